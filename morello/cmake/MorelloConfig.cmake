# find_package(Morello CONFIG) support: morello_add_kernels() synthesizes the kernels a
# TOML kernel list names into headers, at build time, with the Python that has morello.
#
#   morello_add_kernels(<target> KERNELS <kernels.toml> [DB <memo file>]
#                       [OUTPUT_DIR <dir>] [UMBRELLA <name.hpp>])
#
# DB defaults to morello's own ($MORELLO_DB, else the user's cache directory); OUTPUT_DIR
# to <binary dir>/<target>; UMBRELLA to morello_kernels.hpp, which defines the list
# morello::morello_kernels of every kernel's descriptor.
#
# <target> becomes an INTERFACE library: link it to get the headers on the include path
# and the compile flags they need (C++17, -mavx2 -mfma). The headers are regenerated when
# the kernel list, the morello package (its version, model or templates) change; a header
# whose text did not change is not rewritten, so nothing recompiles for nothing.
#
# The interpreter: MORELLO_PYTHON_EXECUTABLE if set; else the virtual environment this
# file lives in; else $VIRTUAL_ENV, Python3_EXECUTABLE, or python3 on the PATH: the first
# that imports morello from this very directory.

cmake_minimum_required(VERSION 3.19)  # dependencies of INTERFACE libraries propagate
include_guard(GLOBAL)

get_filename_component(_morello_cmake_dir "${CMAKE_CURRENT_LIST_DIR}" REALPATH)

function(_morello_check_python candidate out)
  set(${out} "" PARENT_SCOPE)
  if(NOT candidate OR NOT EXISTS "${candidate}")
    return()
  endif()
  execute_process(
    COMMAND "${candidate}" -m morello --cmake-dir
    OUTPUT_VARIABLE dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
  if(rc EQUAL 0)
    get_filename_component(dir "${dir}" REALPATH)
    if(dir STREQUAL _morello_cmake_dir)
      set(${out} "${candidate}" PARENT_SCOPE)
    endif()
  endif()
endfunction()

if(NOT MORELLO_PYTHON_EXECUTABLE)
  set(_morello_candidates "")
  # A virtual environment holding this file: <venv>/lib/pythonX.Y/site-packages/morello/cmake
  set(_dir "${_morello_cmake_dir}")
  foreach(_up RANGE 5)
    get_filename_component(_dir "${_dir}" DIRECTORY)
    if(EXISTS "${_dir}/pyvenv.cfg")
      list(APPEND _morello_candidates "${_dir}/bin/python3" "${_dir}/bin/python")
      break()
    endif()
  endforeach()
  if(DEFINED ENV{VIRTUAL_ENV})
    list(APPEND _morello_candidates "$ENV{VIRTUAL_ENV}/bin/python3")
  endif()
  if(Python3_EXECUTABLE)
    list(APPEND _morello_candidates "${Python3_EXECUTABLE}")
  endif()
  find_program(_morello_path_python NAMES python3 python NO_CACHE)
  list(APPEND _morello_candidates "${_morello_path_python}")
  foreach(_candidate IN LISTS _morello_candidates)
    _morello_check_python("${_candidate}" _found)
    if(_found)
      set(MORELLO_PYTHON_EXECUTABLE "${_found}" CACHE FILEPATH "The Python that runs morello")
      break()
    endif()
  endforeach()
  if(NOT MORELLO_PYTHON_EXECUTABLE)
    string(REPLACE ";" ", " _tried "${_morello_candidates}")
    message(FATAL_ERROR
      "Morello: no Python found that imports morello from ${_morello_cmake_dir} "
      "(tried: ${_tried}). Pass -DMORELLO_PYTHON_EXECUTABLE=/path/to/python.")
  endif()
else()
  _morello_check_python("${MORELLO_PYTHON_EXECUTABLE}" _found)
  if(NOT _found)
    message(FATAL_ERROR
      "Morello: MORELLO_PYTHON_EXECUTABLE=${MORELLO_PYTHON_EXECUTABLE} does not import "
      "morello from ${_morello_cmake_dir}.")
  endif()
endif()

function(morello_add_kernels target)
  cmake_parse_arguments(PARSE_ARGV 1 ARG "" "KERNELS;DB;OUTPUT_DIR;UMBRELLA" "")
  if(ARG_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "morello_add_kernels(${target}): unknown arguments ${ARG_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT ARG_KERNELS)
    message(FATAL_ERROR "morello_add_kernels(${target}): KERNELS <kernels.toml> is required")
  endif()
  get_filename_component(kernels "${ARG_KERNELS}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_SOURCE_DIR}")
  if(NOT EXISTS "${kernels}")
    message(FATAL_ERROR "morello_add_kernels(${target}): no kernel list at ${kernels}")
  endif()
  if(ARG_OUTPUT_DIR)
    get_filename_component(out "${ARG_OUTPUT_DIR}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
  else()
    set(out "${CMAKE_CURRENT_BINARY_DIR}/${target}")
  endif()
  set(options -o "${out}")
  if(ARG_UMBRELLA)
    list(APPEND options --umbrella "${ARG_UMBRELLA}")
  endif()
  set(db_options "")  # morello's default memo table ($MORELLO_DB, else the user's cache)
  if(ARG_DB)
    get_filename_component(db "${ARG_DB}" ABSOLUTE BASE_DIR "${CMAKE_CURRENT_BINARY_DIR}")
    set(db_options --db "${db}")
  endif()

  # Which headers the list makes, and what they depend on. Editing the list re-runs this
  # (a kernel added or renamed changes the outputs).
  execute_process(
    COMMAND "${MORELLO_PYTHON_EXECUTABLE}" -m morello generate "${kernels}" ${options} --list
    OUTPUT_VARIABLE listing ERROR_VARIABLE error RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "morello_add_kernels(${target}): ${error}")
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${kernels}")
  string(REGEX MATCHALL "output [^\n]+" outputs "${listing}")
  string(REGEX MATCHALL "depends [^\n]+" depends "${listing}")
  list(TRANSFORM outputs REPLACE "^output " "")
  list(TRANSFORM depends REPLACE "^depends " "")

  set(stamp "${CMAKE_CURRENT_BINARY_DIR}/${target}.morello-stamp")
  add_custom_command(
    OUTPUT "${stamp}"
    BYPRODUCTS ${outputs}
    COMMAND "${MORELLO_PYTHON_EXECUTABLE}" -m morello generate "${kernels}" ${options} ${db_options}
    COMMAND "${CMAKE_COMMAND}" -E touch "${stamp}"
    DEPENDS ${depends}
    COMMENT "morello: synthesizing the kernels of ${ARG_KERNELS}"
    VERBATIM)
  add_custom_target(${target}_generate DEPENDS "${stamp}")
  add_library(${target} INTERFACE)
  add_dependencies(${target} ${target}_generate)
  target_include_directories(${target} INTERFACE "${out}")
  target_compile_features(${target} INTERFACE cxx_std_17)
  target_compile_options(${target} INTERFACE -mavx2 -mfma)
  find_package(Threads REQUIRED)
  target_link_libraries(${target} INTERFACE Threads::Threads)
endfunction()
