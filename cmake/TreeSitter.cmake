# Obtains the tree-sitter C runtime and the tree-sitter-python grammar at configure time, pinned by version
# and sha256, from their PyPI sdists (nothing is vendored in this repository):
#   tree-sitter 0.24.0        -> tree_sitter/core/lib/src/lib.c, lib/include, and the parser.h/array.h/alloc.h/
#                                ts_assert.h that grammars include as "tree_sitter/*.h"
#   tree-sitter-python 0.23.6 -> src/parser.c, src/scanner.c (language ABI 14)
# Offline builds: -DFASTCOLLECT_SDIST_DIR=/folder/with/both/tar.gz (e.g. from `pip download` elsewhere).
# Both are compiled as one static library with hidden visibility so nothing leaks from the extension.

set(FASTCOLLECT_TS_VERSION 0.24.0)
set(FASTCOLLECT_TS_SHA256 abd95af65ca2f4f7eca356343391ed669e764f37748b5352946f00f7fc78e734)
set(FASTCOLLECT_TSPY_VERSION 0.23.6)
set(FASTCOLLECT_TSPY_SHA256 354bfa0a2f9217431764a631516f85173e9711af2c13dbd796a8815acfe505d9)
set(FASTCOLLECT_SDIST_DIR "" CACHE PATH "Folder holding the tree-sitter sdists (skips the download)")

set(_ts_tar_name "tree-sitter-${FASTCOLLECT_TS_VERSION}.tar.gz")
set(_tspy_tar_name "tree_sitter_python-${FASTCOLLECT_TSPY_VERSION}.tar.gz")
set(_dl_dir "${CMAKE_BINARY_DIR}/_sdists")

function(_fastcollect_find_sdist out name)
  foreach(dir IN ITEMS "${FASTCOLLECT_SDIST_DIR}" "${_dl_dir}")
    if(dir AND EXISTS "${dir}/${name}")
      set(${out} "${dir}/${name}" PARENT_SCOPE)
      return()
    endif()
  endforeach()
  set(${out} "" PARENT_SCOPE)
endfunction()

_fastcollect_find_sdist(_ts_tar ${_ts_tar_name})
_fastcollect_find_sdist(_tspy_tar ${_tspy_tar_name})
if(NOT _ts_tar OR NOT _tspy_tar)
  find_package(Python COMPONENTS Interpreter REQUIRED)
  message(STATUS "fastcollect: downloading tree-sitter sdists with pip into ${_dl_dir}")
  execute_process(
    COMMAND "${Python_EXECUTABLE}" -m pip download --quiet --no-deps --no-binary=:all:
            "tree-sitter==${FASTCOLLECT_TS_VERSION}" "tree-sitter-python==${FASTCOLLECT_TSPY_VERSION}"
            -d "${_dl_dir}"
    RESULT_VARIABLE _pip_rc)
  if(NOT _pip_rc EQUAL 0)
    message(FATAL_ERROR "fastcollect: `pip download` of the tree-sitter sdists failed (rc=${_pip_rc}). "
                        "For an offline build pass -DFASTCOLLECT_SDIST_DIR=<folder with ${_ts_tar_name} "
                        "and ${_tspy_tar_name}>.")
  endif()
  _fastcollect_find_sdist(_ts_tar ${_ts_tar_name})
  _fastcollect_find_sdist(_tspy_tar ${_tspy_tar_name})
endif()

foreach(pair IN ITEMS "_ts_tar;FASTCOLLECT_TS_SHA256" "_tspy_tar;FASTCOLLECT_TSPY_SHA256")
  list(GET pair 0 var)
  list(GET pair 1 want_var)
  file(SHA256 "${${var}}" _got)
  if(NOT _got STREQUAL ${want_var} AND NOT _got STREQUAL "${${want_var}}")
    message(FATAL_ERROR "fastcollect: sha256 mismatch for ${${var}}: got ${_got}, want ${${want_var}}")
  endif()
endforeach()

set(_src_dir "${CMAKE_BINARY_DIR}/_tree_sitter_src")
if(NOT EXISTS "${_src_dir}/.extracted-${FASTCOLLECT_TS_VERSION}-${FASTCOLLECT_TSPY_VERSION}")
  file(REMOVE_RECURSE "${_src_dir}")
  file(MAKE_DIRECTORY "${_src_dir}")
  file(ARCHIVE_EXTRACT INPUT "${_ts_tar}" DESTINATION "${_src_dir}")
  file(ARCHIVE_EXTRACT INPUT "${_tspy_tar}" DESTINATION "${_src_dir}")
  file(TOUCH "${_src_dir}/.extracted-${FASTCOLLECT_TS_VERSION}-${FASTCOLLECT_TSPY_VERSION}")
endif()

set(_ts_lib "${_src_dir}/tree-sitter-${FASTCOLLECT_TS_VERSION}/tree_sitter/core/lib")
set(_tspy "${_src_dir}/tree_sitter_python-${FASTCOLLECT_TSPY_VERSION}/src")
# The grammar includes "tree_sitter/parser.h" etc.; the runtime ships them under lib/src.
set(_grammar_inc "${_src_dir}/grammar_include")
file(MAKE_DIRECTORY "${_grammar_inc}/tree_sitter")
foreach(h parser.h array.h alloc.h ts_assert.h)
  configure_file("${_ts_lib}/src/${h}" "${_grammar_inc}/tree_sitter/${h}" COPYONLY)
endforeach()

add_library(fastcollect_tree_sitter STATIC "${_ts_lib}/src/lib.c" "${_tspy}/parser.c" "${_tspy}/scanner.c")
set_target_properties(fastcollect_tree_sitter PROPERTIES
  C_STANDARD 11 C_VISIBILITY_PRESET hidden POSITION_INDEPENDENT_CODE ON)
target_include_directories(fastcollect_tree_sitter
  PRIVATE "${_ts_lib}/src" "${_grammar_inc}"
  PUBLIC "${_ts_lib}/include")
target_compile_definitions(fastcollect_tree_sitter PRIVATE _POSIX_C_SOURCE=200112L _DEFAULT_SOURCE)
# Third-party C: no warnings from code we do not own.
target_compile_options(fastcollect_tree_sitter PRIVATE -w)
