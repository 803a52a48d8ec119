# cmake -DBINARY_DIR=<build> -DPREFIX=<dir> -DLIBDIR=<lib> -P install.cmake: a clean install of the build.
file(REMOVE_RECURSE "${PREFIX}")
execute_process(COMMAND "${CMAKE_COMMAND}" --install "${BINARY_DIR}" --prefix "${PREFIX}"
                OUTPUT_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "cmake --install ${BINARY_DIR} --prefix ${PREFIX} failed: ${rc}")
endif()
foreach(f include/sandbox/sandbox.hpp ${LIBDIR}/cmake/sandbox/sandbox-config.cmake
          ${LIBDIR}/cmake/sandbox/sandbox-config-version.cmake ${LIBDIR}/cmake/sandbox/sandbox-targets.cmake
          ${LIBDIR}/pkgconfig/sandbox.pc)
  if(NOT EXISTS "${PREFIX}/${f}")
    message(FATAL_ERROR "not installed: ${f}")
  endif()
endforeach()
# A shared libsandbox carries its SONAME (libsandbox.so.0), a static one is an archive.
if(NOT EXISTS "${PREFIX}/${LIBDIR}/libsandbox.so.0" AND NOT EXISTS "${PREFIX}/${LIBDIR}/libsandbox.a")
  message(FATAL_ERROR "neither ${LIBDIR}/libsandbox.so.0 nor ${LIBDIR}/libsandbox.a installed")
endif()
