# substrate_library(<name> [OBJECT] [DIRS <subdir>...] [EXCLUDE <file>...] [PUBLIC <deps>...] [PRIVATE <deps>...])
# One CMake library per folder (ARCHITECTURE.md): the .cpp files of the calling folder (and of
# DIRS below it), the repository root as the include root, dependencies as given. Vendor
# libraries go in PRIVATE so they stay behind their backend's wall. A folder without .cpp files
# becomes an INTERFACE library. OBJECT makes an object library, for folders whose code is linked
# as one with others (the probe core and the probes: the core finds descriptors through the
# registration table, which names the probes).
function(substrate_library name)
  cmake_parse_arguments(ARG "OBJECT" "" "DIRS;EXCLUDE;PUBLIC;PRIVATE" ${ARGN})
  set(globs ${CMAKE_CURRENT_SOURCE_DIR}/*.cpp)
  foreach(dir IN LISTS ARG_DIRS)
    list(APPEND globs ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/*.cpp)
  endforeach()
  file(GLOB sources CONFIGURE_DEPENDS ${globs})
  foreach(file IN LISTS ARG_EXCLUDE)
    list(REMOVE_ITEM sources ${CMAKE_CURRENT_SOURCE_DIR}/${file})
  endforeach()
  if(sources)
    if(ARG_OBJECT)
      add_library(${name} OBJECT ${sources})
    else()
      add_library(${name} STATIC ${sources})
    endif()
    target_include_directories(${name} PUBLIC ${CMAKE_SOURCE_DIR})
    target_link_libraries(${name} PUBLIC ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE})
  else()
    add_library(${name} INTERFACE)
    target_include_directories(${name} INTERFACE ${CMAKE_SOURCE_DIR})
    target_link_libraries(${name} INTERFACE ${ARG_PUBLIC})
  endif()
endfunction()
