# Writes OUT, the header naming this build's version and commit, if what it would hold changed
# (so that a build of the same commit compiles nothing again). Run by the omniroute_version
# target at every build: -DSOURCE_DIR=... -DOUT=... -DVERSION=...
execute_process(COMMAND git -C "${SOURCE_DIR}" rev-parse --short=12 HEAD
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE
                RESULT_VARIABLE failed ERROR_QUIET)
if(failed OR commit STREQUAL "")
  set(commit "unknown")  # a copy of the sources outside git
else()
  execute_process(COMMAND git -C "${SOURCE_DIR}" diff --quiet HEAD --
                  RESULT_VARIABLE dirty ERROR_QUIET)
  if(dirty)
    set(commit "${commit}-modified")
  endif()
endif()
set(text "// Written by ops/version.cmake at build time.\n#pragma once\n#define OMNIROUTE_VERSION \"${VERSION}\"\n#define OMNIROUTE_COMMIT \"${commit}\"\n")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
