# Sets _morello_package_cmake_dir to the morello/cmake directory of the installed package
# (empty if no Python has morello), and MORELLO_PYTHON_EXECUTABLE to the Python it was
# found with; _morello_candidates lists the Pythons tried.
get_filename_component(_morello_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
set(_morello_package_cmake_dir "")
set(_morello_candidates "${MORELLO_PYTHON_EXECUTABLE}" "${_morello_prefix}/bin/python3"
    "${_morello_prefix}/bin/python")
if(DEFINED ENV{VIRTUAL_ENV})
  list(APPEND _morello_candidates "$ENV{VIRTUAL_ENV}/bin/python3")
endif()
find_program(_morello_path_python NAMES python3 python NO_CACHE)
list(APPEND _morello_candidates "${_morello_path_python}")
foreach(_candidate IN LISTS _morello_candidates)
  if(_candidate AND EXISTS "${_candidate}")
    execute_process(
      COMMAND "${_candidate}" -m morello --cmake-dir
      OUTPUT_VARIABLE _dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE _rc)
    if(_rc EQUAL 0 AND EXISTS "${_dir}/MorelloConfig.cmake")
      set(_morello_package_cmake_dir "${_dir}")
      set(MORELLO_PYTHON_EXECUTABLE "${_candidate}" CACHE FILEPATH "The Python that runs morello")
      break()
    endif()
  endif()
endforeach()
