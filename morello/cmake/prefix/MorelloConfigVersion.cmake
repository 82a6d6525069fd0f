# The version is the installed package's; see MorelloConfig.cmake beside this file.
include("${CMAKE_CURRENT_LIST_DIR}/MorelloPackageDir.cmake")
if(_morello_package_cmake_dir)
  include("${_morello_package_cmake_dir}/MorelloConfigVersion.cmake")
else()
  set(PACKAGE_VERSION_UNSUITABLE TRUE)
endif()
