/* Wine 8 lacks bcryptprimitives.dll, from which Rust's std (1.78+) imports
 * ProcessPrng for its random numbers. This stand-in answers from
 * RtlGenRandom (advapi32!SystemFunction036), which Wine has. Only for running
 * Rampart's Windows binaries under Wine in tests; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
