# See MorelloConfig.cmake beside this file: the version is the installed package's.
get_filename_component(_morello_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
execute_process(
  COMMAND "${_morello_prefix}/bin/python3" -m morello --cmake-dir
  OUTPUT_VARIABLE _morello_dir OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE _rc)
if(_rc EQUAL 0)
  include("${_morello_dir}/MorelloConfigVersion.cmake")
else()
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
