/* A stand-in for bcryptprimitives.dll, which wine 8.0 (Debian 13) lacks
   and Windows 10 and later have: Rust's standard library (1.78 on) takes
   its random numbers from ProcessPrng. tests/windows.rs builds it with
   mingw-w64 into the test's wine prefix only; the gateway never ships it. */
#include <windows.h>
#include <ntsecapi.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
