# cmake -DPREFIX=<dir> -DLIBDIR=<lib> -P pkgconfig.cmake: the installed sandbox.pc resolves
# to that prefix (it is relocatable) and links -lsandbox; --static also names what a static
# libsandbox.a needs (libseccomp, fmt, libcrypto), and a shared install needs none of them.
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} "${PREFIX}/${LIBDIR}/pkgconfig")
execute_process(COMMAND "${PKG_CONFIG}" --print-errors --cflags --libs sandbox
                OUTPUT_VARIABLE flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
execute_process(COMMAND "${PKG_CONFIG}" --variable=includedir sandbox
                OUTPUT_VARIABLE includedir OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config sandbox failed")
endif()
file(REAL_PATH "${includedir}" includedir)
file(REAL_PATH "${PREFIX}/include" expected)
if(NOT includedir STREQUAL expected OR NOT flags MATCHES "-lsandbox")
  message(FATAL_ERROR "unexpected: includedir=${includedir} flags=${flags}")
endif()
execute_process(COMMAND "${PKG_CONFIG}" --print-errors --static --libs sandbox
                OUTPUT_VARIABLE static_flags OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "pkg-config --static sandbox failed")
endif()
if(EXISTS "${PREFIX}/${LIBDIR}/libsandbox.a")
  if(NOT static_flags MATCHES "-lseccomp" OR NOT static_flags MATCHES "-lfmt" OR NOT static_flags MATCHES "-lcrypto")
    message(FATAL_ERROR "static libsandbox, but pkg-config --static gives: ${static_flags}")
  endif()
elseif(static_flags MATCHES "-lseccomp")
  message(FATAL_ERROR "shared libsandbox, but its .pc drags in private libraries: ${static_flags}")
endif()
message(STATUS "pkg-config sandbox: ${flags}; --static: ${static_flags}")
