# Install rules and the CMake package: find_package(sandbox) gives sandbox::sandbox, and
# pkg-config finds sandbox.pc. The executables (sandboxctl, sandbox-agent) install themselves.
include(CMakePackageConfigHelpers)

set(SANDBOX_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/sandbox")

# Every library whose header is installed is exported: sandbox.hpp & co. (sandbox::sandbox),
# placement.hpp (sandbox::placement) and server.hpp (sandbox::server).
set(SANDBOX_EXPORTED_TARGETS sandbox sandbox_placement)
if(TARGET sandbox_server)
  list(APPEND SANDBOX_EXPORTED_TARGETS sandbox_server)
endif()
install(TARGETS ${SANDBOX_EXPORTED_TARGETS} EXPORT sandbox-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/sandbox
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp" PATTERN "server.hpp" EXCLUDE)
if(TARGET sandbox_server)
  install(FILES ${PROJECT_SOURCE_DIR}/include/sandbox/server.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/sandbox)
endif()
install(EXPORT sandbox-targets
  NAMESPACE sandbox::
  FILE sandbox-targets.cmake
  DESTINATION ${SANDBOX_CMAKE_DIR})

# Static archives carry their private dependencies to the consumer's link line, so the
# config and the .pc name them too; shared libraries need only their public ones.
get_target_property(SANDBOX_LIBRARY_TYPE sandbox TYPE)
if(SANDBOX_LIBRARY_TYPE STREQUAL "STATIC_LIBRARY")
  set(SANDBOX_STATIC ON)
  set(SANDBOX_PC_PRIVATE_REQUIRES "fmt libseccomp openssl")
  set(SANDBOX_PC_PRIVATE_LIBS "${CMAKE_DL_LIBS}")
  list(TRANSFORM SANDBOX_PC_PRIVATE_LIBS PREPEND "-l")
  string(JOIN " " SANDBOX_PC_PRIVATE_LIBS ${SANDBOX_PC_PRIVATE_LIBS})
else()
  set(SANDBOX_STATIC OFF)
  set(SANDBOX_PC_PRIVATE_REQUIRES "")
  set(SANDBOX_PC_PRIVATE_LIBS "")
endif()

configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/sandbox-config.cmake.in
  ${PROJECT_BINARY_DIR}/sandbox-config.cmake
  INSTALL_DESTINATION ${SANDBOX_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/sandbox-config-version.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/sandbox-config.cmake
              ${PROJECT_BINARY_DIR}/sandbox-config-version.cmake
  DESTINATION ${SANDBOX_CMAKE_DIR})

# A relocatable .pc: ${prefix} is derived from where the file sits, so `cmake --install
# --prefix <dir>` works without reconfiguring.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(SANDBOX_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH SANDBOX_PC_UP "/prefix/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/prefix")
  string(REGEX REPLACE "/$" "" SANDBOX_PC_UP "${SANDBOX_PC_UP}")
  set(SANDBOX_PC_PREFIX "\${pcfiledir}/${SANDBOX_PC_UP}")
endif()
foreach(dir LIBDIR INCLUDEDIR)
  if(IS_ABSOLUTE "${CMAKE_INSTALL_${dir}}")
    set(SANDBOX_PC_${dir} "${CMAKE_INSTALL_${dir}}")
  else()
    set(SANDBOX_PC_${dir} "\${prefix}/${CMAKE_INSTALL_${dir}}")
  endif()
endforeach()
configure_file(${PROJECT_SOURCE_DIR}/cmake/sandbox.pc.in ${PROJECT_BINARY_DIR}/sandbox.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/sandbox.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
