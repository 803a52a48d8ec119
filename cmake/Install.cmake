# Install rules and the CMake package: find_package(sandbox) gives sandbox::sandbox, and
# pkg-config finds sandbox.pc. The executables (sandboxctl, sandbox-agent) install themselves.
include(CMakePackageConfigHelpers)

set(SANDBOX_CMAKE_DIR "${CMAKE_INSTALL_LIBDIR}/cmake/sandbox")

install(TARGETS sandbox EXPORT sandbox-targets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/sandbox
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.hpp")
install(EXPORT sandbox-targets
  NAMESPACE sandbox::
  FILE sandbox-targets.cmake
  DESTINATION ${SANDBOX_CMAKE_DIR})

# A static libsandbox carries its private dependencies to the consumer's link line, so the
# config must find them too; a shared one needs only its public dependency (Threads).
get_target_property(SANDBOX_LIBRARY_TYPE sandbox TYPE)
if(SANDBOX_LIBRARY_TYPE STREQUAL "STATIC_LIBRARY")
  set(SANDBOX_STATIC ON)
  set(SANDBOX_PC_PRIVATE_REQUIRES "fmt libseccomp openssl")
else()
  set(SANDBOX_STATIC OFF)
  set(SANDBOX_PC_PRIVATE_REQUIRES "")
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
