#version 450
// The reference shader copy of bench/bandwidth.cpp (not a probe kernel, not in the kernel-build
// hash): one invocation per uvec4, no loop, no arithmetic beyond the index. What a memory pass
// costs on a device beyond this is the pattern's own work.
layout(local_size_x = 256) in;

layout(std430, binding = 0) readonly buffer Source { uvec4 source[]; };
layout(std430, binding = 1) writeonly buffer Target { uvec4 target[]; };

layout(push_constant) uniform Params { uint quad_count; } p;

void main() {
  uint quad = gl_GlobalInvocationID.x + gl_GlobalInvocationID.y * gl_NumWorkGroups.x * 256u;
  if (quad < p.quad_count) target[quad] = source[quad];
}
