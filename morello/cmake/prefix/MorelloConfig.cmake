# pip installs this file into <prefix>/share/cmake/Morello, where CMAKE_PREFIX_PATH=<prefix>
# finds it (<prefix> being a virtual environment, say). It hands over to the config inside
# the installed package, run by this prefix's own Python.
get_filename_component(_morello_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
if(NOT MORELLO_PYTHON_EXECUTABLE)
  foreach(_candidate "${_morello_prefix}/bin/python3" "${_morello_prefix}/bin/python")
    if(EXISTS "${_candidate}")
      set(MORELLO_PYTHON_EXECUTABLE "${_candidate}" CACHE FILEPATH "The Python that runs morello")
      break()
    endif()
  endforeach()
endif()
execute_process(
  COMMAND "${MORELLO_PYTHON_EXECUTABLE}" -m morello --cmake-dir
  OUTPUT_VARIABLE _morello_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
if(NOT _rc EQUAL 0)
  message(FATAL_ERROR "Morello: ${MORELLO_PYTHON_EXECUTABLE} -m morello --cmake-dir failed")
endif()
include("${_morello_dir}/MorelloConfig.cmake")
