#pragma once
// Pure helpers that turn what the CUDA driver reports into the DeviceInfo conventions shared
// with the Vulkan and NVML views (so one physical GPU is recognisably one device). No cuda.h.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace substrate::cuda {

// 16 UUID bytes as canonical 8-4-4-4-12 lower-case hex.
std::string format_uuid(const std::array<unsigned char, 16>& bytes);

// "0000:3B:00.0" or "00000000:3b:00.0" (any hex case, any domain width) -> "0000:3b:00.0";
// "3b:00.0" (no domain) -> "0000:3b:00.0"; anything unparsable -> "".
std::string canonical_pci_bus_id(std::string_view text);

// cuDriverGetVersion's integer (1000*major + 10*minor) -> "13.0".
std::string cuda_version_text(int version);

// The kernel driver's version ("550.54.15") from the text of /proc/driver/nvidia/version, whose
// first line reads "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  <build date>"
// (open kernel modules: "... Open Kernel Module for x86_64  550.54.15 ..."); "" when absent.
// It is what nvidia-smi and NVML call the driver version; the CUDA API version (12.4) is another.
std::string kernel_driver_version(std::string_view proc_version_text);

}  // namespace substrate::cuda
