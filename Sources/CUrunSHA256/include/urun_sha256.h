// SHA-256 for image digests. In C because the x86 SHA extensions (SHA-NI)
// are reachable only through compiler intrinsics: with them the digest runs
// at gigabytes per second, so hashing never slows an unpack down.
#ifndef URUN_SHA256_H
#define URUN_SHA256_H
#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t state[8];
    uint64_t length;
    uint8_t buffer[64];
    size_t used;
} urun_sha256;

void urun_sha256_init(urun_sha256 *context);
void urun_sha256_update(urun_sha256 *context, const void *data, size_t length);
void urun_sha256_final(urun_sha256 *context, uint8_t digest[32]);
/// 1 when the SHA-NI path is in use.
int urun_sha256_accelerated(void);
#endif
