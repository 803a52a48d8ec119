# What a shared library of the project exports: the C++ names under sandbox:: (with their
# type info and vtables), nothing else. The Boost, fmt and nlohmann code instantiated
# inside stays local, so a consumer's own copies of those libraries never bind to ours.
set(SANDBOX_VERSION_SCRIPT "${CMAKE_CURRENT_LIST_DIR}/sandbox.map")
function(sandbox_export_only_api target)
  get_target_property(type ${target} TYPE)
  if(type STREQUAL "SHARED_LIBRARY")
    target_link_options(${target} PRIVATE "LINKER:--version-script=${SANDBOX_VERSION_SCRIPT}")
    set_property(TARGET ${target} APPEND PROPERTY LINK_DEPENDS "${SANDBOX_VERSION_SCRIPT}")
  endif()
endfunction()
