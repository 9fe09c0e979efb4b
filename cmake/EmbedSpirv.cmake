# substrate_embed_spirv(TARGET <lib> SOURCES a.comp b.comp INCLUDE_DIR dir)
# Compiles each GLSL compute shader with glslc into SPIR-V words and generates
# generated/spirv/<name>.hpp declaring `substrate::spirv::<name>` (a std::span of uint32_t).
# glslc writes a depfile so edits to included .glsl files rebuild the shader.
function(substrate_embed_spirv)
  cmake_parse_arguments(ARG "" "TARGET;INCLUDE_DIR" "SOURCES" ${ARGN})
  set(out_dir ${CMAKE_BINARY_DIR}/generated/spirv)
  file(MAKE_DIRECTORY ${out_dir})
  set(all_hashes "")
  foreach(src ${ARG_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    get_filename_component(abs ${src} ABSOLUTE)
    set(words ${out_dir}/${name}.spv.inc)
    add_custom_command(
      OUTPUT ${words}
      COMMAND Vulkan::glslc --target-env=vulkan1.1 -O -I ${ARG_INCLUDE_DIR} -mfmt=c
              -MD -MF ${words}.d -o ${words} ${abs}
      DEPENDS ${abs}
      DEPFILE ${words}.d
      COMMENT "glslc ${name}.comp"
      VERBATIM)
    set(cpp ${out_dir}/${name}.cpp)
    file(WRITE ${cpp}.in
      "#include \"spirv/${name}.hpp\"\n"
      "namespace substrate::spirv {\n"
      "namespace { constexpr std::uint32_t k_words[] =\n#include \"spirv/${name}.spv.inc\"\n; }\n"
      "std::span<const std::uint32_t> ${name}() { return k_words; }\n"
      "}\n")
    configure_file(${cpp}.in ${cpp} COPYONLY)
    set(hpp ${out_dir}/${name}.hpp)
    file(WRITE ${hpp}.in
      "#pragma once\n#include <cstdint>\n#include <span>\n"
      "namespace substrate::spirv {\n"
      "// SPIR-V of kernels/glsl/${name}.comp, compiled at build time.\n"
      "std::span<const std::uint32_t> ${name}();\n}\n")
    configure_file(${hpp}.in ${hpp} COPYONLY)
    set_source_files_properties(${cpp} PROPERTIES OBJECT_DEPENDS ${words})
    target_sources(${ARG_TARGET} PRIVATE ${cpp} ${words})
  endforeach()
endfunction()
