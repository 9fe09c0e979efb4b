#pragma once
// The subset of the NVML C ABI that substrated calls, declared here because no nvml.h is available
// at build time and the library is loaded with dlopen. Values and layouts follow NVIDIA's public
// nvml.h (API version 12); the static_asserts pin the layouts of the structs we pass by pointer.
// This folder is the only place in the tree that declares NVML types.
#include <cstdint>

namespace substrate::nvml::api {

using Return = int;  // nvmlReturn_t
inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorUninitialized = 1;
inline constexpr Return kErrorInvalidArgument = 2;
inline constexpr Return kErrorNotSupported = 3;
inline constexpr Return kErrorNoPermission = 4;
inline constexpr Return kErrorNotFound = 6;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorInsufficientPower = 8;
inline constexpr Return kErrorDriverNotLoaded = 9;
inline constexpr Return kErrorTimeout = 10;
inline constexpr Return kErrorIrqIssue = 11;
inline constexpr Return kErrorLibraryNotFound = 12;
inline constexpr Return kErrorFunctionNotFound = 13;
inline constexpr Return kErrorCorruptedInforom = 14;
inline constexpr Return kErrorGpuIsLost = 15;
inline constexpr Return kErrorResetRequired = 16;
inline constexpr Return kErrorOperatingSystem = 17;
inline constexpr Return kErrorLibRmVersionMismatch = 18;
inline constexpr Return kErrorInUse = 19;
inline constexpr Return kErrorMemory = 20;
inline constexpr Return kErrorNoData = 21;
inline constexpr Return kErrorUnknown = 999;

struct DeviceOpaque;
using Device = DeviceOpaque*;  // nvmlDevice_t
struct EventSetOpaque;
using EventSet = EventSetOpaque*;  // nvmlEventSet_t

// nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v2/_v3. The v1 struct has the same domain/bus/
// device fields at the same offsets and is smaller, so one buffer of this type serves every version.
struct PciInfo {
  char bus_id_legacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pci_device_id;
  unsigned int pci_subsystem_id;
  char bus_id[32];
};
static_assert(sizeof(PciInfo) == 68);

struct Utilization {  // nvmlUtilization_t, percent
  unsigned int gpu;
  unsigned int memory;
};
static_assert(sizeof(Utilization) == 8);

struct ViolationTime {  // nvmlViolationTime_t
  unsigned long long reference_time;
  unsigned long long violation_time;  // nanoseconds
};
static_assert(sizeof(ViolationTime) == 16);

struct TemperatureV1 {  // nvmlTemperature_v1_t for nvmlDeviceGetTemperatureV
  unsigned int version;
  int sensor_type;
  int temperature;
};
static_assert(sizeof(TemperatureV1) == 12);
// NVML_STRUCT_VERSION(Temperature, 1): the struct size in the low bits, the version in the top byte.
inline constexpr unsigned int kTemperatureV1Version = sizeof(TemperatureV1) | (1u << 24);

enum ValueType : int {  // nvmlValueType_t
  kValueDouble = 0,
  kValueUnsignedInt = 1,
  kValueUnsignedLong = 2,
  kValueUnsignedLongLong = 3,
  kValueSignedLongLong = 4,
  kValueSignedInt = 5,
  kValueUnsignedShort = 6,
};

union Value {  // nvmlValue_t
  double d;
  unsigned int ui;
  unsigned long ul;
  unsigned long long ull;
  long long sll;
  int si;
  unsigned short us;
};
static_assert(sizeof(Value) == 8);

struct FieldValue {  // nvmlFieldValue_t
  unsigned int field_id;
  unsigned int scope_id;
  long long timestamp;
  long long latency_usec;
  int value_type;  // ValueType
  Return nvml_return;
  Value value;
};
static_assert(sizeof(FieldValue) == 40);

// nvmlEventData_t as filled by nvmlEventSetWait_v2. nvmlEventSetWait (v1) fills only the first
// three members, so the same buffer serves both.
struct EventData {
  Device device;
  unsigned long long event_type;
  unsigned long long event_data;  // the XID for kEventTypeXidCriticalError, 999 when unknown
  unsigned int gpu_instance_id;
  unsigned int compute_instance_id;
};
static_assert(sizeof(EventData) == 32);

inline constexpr unsigned long long kEventTypeXidCriticalError = 0x8ULL;

// nvmlMemoryErrorType_t, nvmlEccCounterType_t, nvmlMemoryLocation_t
inline constexpr int kMemoryErrorCorrected = 0;
inline constexpr int kMemoryErrorUncorrected = 1;
inline constexpr int kVolatileEcc = 0;
inline constexpr int kAggregateEcc = 1;
inline constexpr int kLocationL1Cache = 0;
inline constexpr int kLocationL2Cache = 1;
inline constexpr int kLocationDeviceMemory = 2;  // also NVML_MEMORY_LOCATION_DRAM
inline constexpr int kLocationRegisterFile = 3;
inline constexpr int kLocationSram = 7;

// nvmlPageRetirementCause_t
inline constexpr int kRetirementMultipleSingleBit = 0;
inline constexpr int kRetirementDoubleBit = 1;

// nvmlTemperatureSensors_t, nvmlTemperatureThresholds_t
inline constexpr int kTemperatureGpu = 0;
inline constexpr int kThresholdShutdown = 0;
inline constexpr int kThresholdSlowdown = 1;
inline constexpr int kThresholdMemMax = 2;
inline constexpr int kThresholdGpuMax = 3;

// nvmlFieldValue field id of the memory (HBM) temperature
inline constexpr unsigned int kFieldMemoryTemperature = 82;
// NVML_FI_DEV_GET_GPU_RECOVERY_ACTION (newer drivers): an nvmlDeviceGpuRecoveryAction_t, the action the
// driver asks for (XID 154 announces a change). Older drivers answer NOT_SUPPORTED for the field.
inline constexpr unsigned int kFieldGpuRecoveryAction = 230;
inline constexpr unsigned int kRecoveryActionNone = 0;
inline constexpr unsigned int kRecoveryActionDrainP2p = 3;

// nvmlClockType_t
inline constexpr int kClockSm = 1;
inline constexpr int kClockMemory = 2;

// nvmlPerfPolicyType_t
inline constexpr int kPerfPolicyPower = 0;
inline constexpr int kPerfPolicyThermal = 1;
inline constexpr int kPerfPolicySyncBoost = 2;
inline constexpr int kPerfPolicyBoardLimit = 3;
inline constexpr int kPerfPolicyLowUtilization = 4;
inline constexpr int kPerfPolicyReliability = 5;
inline constexpr int kPerfPolicyTotalAppClocks = 10;
inline constexpr int kPerfPolicyTotalBaseClocks = 11;

// nvmlClocksEventReason* bits (formerly nvmlClocksThrottleReason*)
inline constexpr unsigned long long kReasonGpuIdle = 0x1;
inline constexpr unsigned long long kReasonApplicationsClocksSetting = 0x2;
inline constexpr unsigned long long kReasonSwPowerCap = 0x4;
inline constexpr unsigned long long kReasonHwSlowdown = 0x8;
inline constexpr unsigned long long kReasonSyncBoost = 0x10;
inline constexpr unsigned long long kReasonSwThermalSlowdown = 0x20;
inline constexpr unsigned long long kReasonHwThermalSlowdown = 0x40;
inline constexpr unsigned long long kReasonHwPowerBrakeSlowdown = 0x80;
inline constexpr unsigned long long kReasonDisplayClockSetting = 0x100;

// nvmlNvLinkErrorCounter_t; NVML_NVLINK_MAX_LINKS is 18 since Hopper
inline constexpr int kNvLinkErrorReplay = 0;
inline constexpr int kNvLinkErrorRecovery = 1;
inline constexpr int kNvLinkErrorCrcFlit = 2;
inline constexpr int kNvLinkErrorCrcData = 3;
inline constexpr int kNvLinkErrorEccData = 4;
inline constexpr unsigned int kNvLinkMaxLinks = 18;
inline constexpr int kEnableStateEnabled = 1;  // nvmlEnableState_t

// nvmlDeviceGetMigMode: NVML_DEVICE_MIG_ENABLE
inline constexpr unsigned int kDeviceMigEnable = 1;

inline constexpr unsigned int kUuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE
inline constexpr unsigned int kNameBufferSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE

// Entry point signatures, one alias per symbol family (versioned and unversioned names share one).
extern "C" {
using InitFn = Return (*)();
using ShutdownFn = Return (*)();
using ErrorStringFn = const char* (*)(Return);
using DeviceGetCountFn = Return (*)(unsigned int*);
using DeviceGetHandleByIndexFn = Return (*)(unsigned int, Device*);
using DeviceGetPciInfoFn = Return (*)(Device, PciInfo*);
using DeviceGetStringFn = Return (*)(Device, char*, unsigned int);  // UUID, name, VBIOS, serial, part number
using DeviceGetTotalEccErrorsFn = Return (*)(Device, int, int, unsigned long long*);
using DeviceGetMemoryErrorCounterFn = Return (*)(Device, int, int, int, unsigned long long*);
using DeviceGetRetiredPagesFn = Return (*)(Device, int, unsigned int*, unsigned long long*);
using DeviceGetEnableStateFn = Return (*)(Device, int*);  // retired pages pending, NvLink state
using DeviceGetRemappedRowsFn = Return (*)(Device, unsigned int*, unsigned int*, unsigned int*, unsigned int*);
using DeviceGetTemperatureVFn = Return (*)(Device, TemperatureV1*);
using DeviceGetTemperatureFn = Return (*)(Device, int, unsigned int*);
using DeviceGetTemperatureThresholdFn = Return (*)(Device, int, unsigned int*);
using DeviceGetFieldValuesFn = Return (*)(Device, int, FieldValue*);
using DeviceGetReasonsFn = Return (*)(Device, unsigned long long*);
using DeviceGetViolationStatusFn = Return (*)(Device, int, ViolationTime*);
using DeviceGetUnsignedFn = Return (*)(Device, unsigned int*);  // power, limit, PCIe replays
using DeviceGetClockInfoFn = Return (*)(Device, int, unsigned int*);
using DeviceGetUtilizationRatesFn = Return (*)(Device, Utilization*);
using DeviceGetNvLinkStateFn = Return (*)(Device, unsigned int, int*);
using DeviceGetNvLinkErrorCounterFn = Return (*)(Device, unsigned int, int, unsigned long long*);
using EventSetCreateFn = Return (*)(EventSet*);
using DeviceRegisterEventsFn = Return (*)(Device, unsigned long long, EventSet);
using EventSetWaitFn = Return (*)(EventSet, EventData*, unsigned int);
using EventSetFreeFn = Return (*)(EventSet);
using DeviceGetMigModeFn = Return (*)(Device, unsigned int*, unsigned int*);  // current, pending
using DeviceGetMaxMigDeviceCountFn = Return (*)(Device, unsigned int*);
using DeviceGetMigDeviceHandleByIndexFn = Return (*)(Device, unsigned int, Device*);
using DeviceGetGpuInstanceIdFn = Return (*)(Device, unsigned int*);
// nvmlDeviceGetComputeRunningProcesses(_v3/_v2): called with a count of 0 and no array only, which
// returns SUCCESS (none) or INSUFFICIENT_SIZE with the count; the info struct's layout, which
// changed between versions, is never read (hence void*).
using DeviceGetComputeRunningProcessesFn = Return (*)(Device, unsigned int*, void*);
}

}  // namespace substrate::nvml::api
