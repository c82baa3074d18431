# Compiler flags shared by every terse target, applied through terse_flags.
add_library(terse_flags INTERFACE)
target_compile_options(terse_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
    -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wnull-dereference -Wformat=2>)
# Error messages carry file:line; name files relative to the source tree, not the build machine.
target_compile_options(terse_flags INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-ffile-prefix-map=${PROJECT_SOURCE_DIR}/=>)
if(TERSE_WERROR)
  target_compile_options(terse_flags INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
if(TERSE_SANITIZE)
  string(REPLACE ";" "," _san "${TERSE_SANITIZE}")
  add_compile_options(-fsanitize=${_san} -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${_san})
endif()
