// libarchive, linked statically in release builds: urun uses the tar reader
// and writer and the bzip2 decompressor, so none of libarchive's other
// dependencies (libxml2, ICU, nettle, libacl) are pulled in. gzip, xz and
// zstd are decoded by zlib, liblzma and libzstd themselves (UrunImage's
// Decoder: in place, gzip's CRC checked, xz on threads); zlib also
// compresses the layers urun writes (commit, save, push).
#ifndef URUN_ARCHIVE_H
#define URUN_ARCHIVE_H
#include <archive.h>
#include <archive_entry.h>
#include <lzma.h>
#include <stdint.h>
#include <zlib.h>
#include <zstd.h>

/// deflateInit2 is a macro: a gzip stream (not raw deflate, not zlib's own header).
static inline int urun_gzip_init(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}

/// inflateInit2 is a macro: gzip only (its header and CRC-32 checked).
static inline int urun_gunzip_init(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}

/// liblzma's threaded xz decoder, set up as `xz -d -T0` is: the blocks of a
/// file compressed with threads (xz -T, the default since xz 5.6) are decoded
/// on `threads` threads, within xz's own memory budget for it (a quarter of
/// RAM; a block that needs more is decoded in place, single-threaded).
/// Concatenated streams are read as one, as xz -d reads them. A file whose
/// dictionary alone would need more than that quarter (at least 256 MiB;
/// xz -9 needs 65 MiB) is refused rather than allocated. With `threads` 1
/// the plain decoder: the threaded one would still start a worker thread,
/// and urun itself starts none before it clones a container.
static inline lzma_ret urun_xz_decoder(lzma_stream *stream, uint32_t threads) {
    uint64_t quarter = lzma_physmem() / 4;
    uint64_t limit = quarter > (256u << 20) ? quarter : (256u << 20);
    if (threads <= 1)
        return lzma_stream_decoder(stream, limit, LZMA_CONCATENATED);
    lzma_mt options = {0};
    options.flags = LZMA_CONCATENATED;
    options.threads = threads;
    options.memlimit_threading = quarter;
    options.memlimit_stop = limit;
    return lzma_stream_decoder_mt(stream, &options);
}
#endif
