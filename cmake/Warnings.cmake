# One warning policy for every target of the project (not for consumers).
add_library(sandbox_warnings INTERFACE)
target_compile_options(sandbox_warnings INTERFACE
  -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor -Wcast-align -Woverloaded-virtual
  -Wimplicit-fallthrough -Wno-missing-field-initializers
  $<$<BOOL:${SANDBOX_WERROR}>:-Werror>)
option(SANDBOX_WERROR "Treat warnings as errors" OFF)
