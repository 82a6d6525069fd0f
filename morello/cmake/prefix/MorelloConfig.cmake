# Installed into <prefix>/share/cmake/Morello (by pip beside a virtual environment's Python,
# or by the top-level CMakeLists' install rules), where CMAKE_PREFIX_PATH=<prefix> finds
# it. It hands over to the config inside the installed package, found by asking the
# first Python that has morello: MORELLO_PYTHON_EXECUTABLE, <prefix>/bin/python3,
# $VIRTUAL_ENV/bin/python3, python3 on the PATH.
include("${CMAKE_CURRENT_LIST_DIR}/MorelloPackageDir.cmake")
if(NOT _morello_package_cmake_dir)
  string(REPLACE ";" ", " _tried "${_morello_candidates}")
  message(FATAL_ERROR "Morello: no Python with morello installed (tried: ${_tried}). "
                      "Pass -DMORELLO_PYTHON_EXECUTABLE=/path/to/python.")
endif()
include("${_morello_package_cmake_dir}/MorelloConfig.cmake")
