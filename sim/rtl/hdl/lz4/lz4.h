// The two LZ4 entry points Verilator's FST writer calls, declared for building against
// the system's liblz4.so.1 when its development header (Debian liblz4-dev) is missing.
// Both are stable parts of the LZ4 ABI since 1.7.
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

int LZ4_compressBound(int inputSize);
int LZ4_compress_default(const char* src, char* dst, int srcSize, int dstCapacity);

#ifdef __cplusplus
}
#endif
