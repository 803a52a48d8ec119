# cmake -DPREFIX=<dir> -DLIBDIR=<lib> -P pkgconfig.cmake: sandbox.pc resolves to the prefix.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${LIBDIR}/pkgconfig")
execute_process(COMMAND "${PKG_CONFIG}" --print-errors --cflags --libs sandbox
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config sandbox failed")
endif()
if(NOT flags MATCHES "-I${PREFIX}/include" OR NOT flags MATCHES "-lsandbox")
  message(FATAL_ERROR "unexpected flags: ${flags}")
endif()
message(STATUS "pkg-config sandbox: ${flags}")
