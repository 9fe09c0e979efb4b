# cmake -DIN=<nvcc's PTX> -DOUT=<file> -DISA=<major.minor> -P CudaPtxIsa.cmake
# Declares nvcc's PTX at an older PTX ISA: replaces the one ".version X.Y" line with ".version ISA"
# and records the original in a comment (the backend reports the fatbin's own ISA from it). The
# caller runs ptxas on the result, which refuses any instruction the declared ISA lacks, so this
# rewrite can never smuggle newer code past an older driver's JIT.
file(READ "${IN}" text)
string(REGEX MATCHALL "\n\\.version [0-9]+\\.[0-9]+\n" versions "\n${text}")
list(LENGTH versions count)
if(NOT count EQUAL 1)
  message(FATAL_ERROR "${IN}: expected exactly one .version line, found ${count}")
endif()
string(REGEX MATCH "[0-9]+\\.[0-9]+" native "${versions}")
if(native VERSION_LESS ISA)
  message(FATAL_ERROR "${IN}: nvcc wrote PTX ISA ${native}, older than the requested ${ISA}")
endif()
string(REGEX REPLACE "\n\\.version [0-9]+\\.[0-9]+\n" "\n// substrate: nvcc wrote .version ${native}\n.version ${ISA}\n"
       text "\n${text}")
string(SUBSTRING "${text}" 1 -1 text)
file(WRITE "${OUT}" "${text}")
