# substrate_embed_spirv(TARGET <lib> SOURCES a.comp b.comp [RTE_SOURCES a.comp] INCLUDE_DIR dir)
# Compiles each GLSL compute shader with glslc into SPIR-V words and generates
# generated/spirv/<name>.hpp declaring `substrate::spirv::<name>` (a std::span of uint32_t).
# glslc writes a depfile so edits to included .glsl files rebuild the shader.
function(substrate_embed_spirv)
  cmake_parse_arguments(ARG "" "TARGET;INCLUDE_DIR" "SOURCES;RTE_SOURCES" ${ARGN})
  foreach(src ${ARG_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    substrate_embed_one_spirv(${ARG_TARGET} ${ARG_INCLUDE_DIR} ${src} ${name} "")
  endforeach()
  # RTE_SOURCES: a second module <name>_rte compiled with SUBSTRATE_RTE defined, which declares
  # round-to-nearest-even (for devices with shaderRoundingModeRTEFloat32).
  foreach(src ${ARG_RTE_SOURCES})
    get_filename_component(name ${src} NAME_WE)
    substrate_embed_one_spirv(${ARG_TARGET} ${ARG_INCLUDE_DIR} ${src} ${name}_rte "-DSUBSTRATE_RTE")
  endforeach()
endfunction()

function(substrate_embed_one_spirv target include_dir src name define)
  set(out_dir ${CMAKE_BINARY_DIR}/generated/spirv)
  file(MAKE_DIRECTORY ${out_dir})
  get_filename_component(abs ${src} ABSOLUTE)
  get_filename_component(src_name ${src} NAME_WE)
  set(words ${out_dir}/${name}.spv.inc)
  add_custom_command(
    OUTPUT ${words}
    COMMAND Vulkan::glslc --target-env=vulkan1.1 -O -I ${include_dir} ${define} -mfmt=c
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
    "// SPIR-V of kernels/glsl/${src_name}.comp, compiled at build time.\n"
    "std::span<const std::uint32_t> ${name}();\n}\n")
  configure_file(${hpp}.in ${hpp} COPYONLY)
  set_source_files_properties(${cpp} PROPERTIES OBJECT_DEPENDS ${words})
  target_sources(${target} PRIVATE ${cpp} ${words})
endfunction()
