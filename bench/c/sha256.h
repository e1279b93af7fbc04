/* sha256.h: SHA-256 (FIPS 180-4) in portable C, for the tree workload's rows that hash as sha256sum does.
 * A plain one-block-at-a-time implementation, the kind coreutils' sha256sum uses (gnulib's, no SHA
 * instructions): the rows that compare with it then compare the runtimes, not two hash implementations. */
#ifndef BENCH_SHA256_H
#define BENCH_SHA256_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef struct bench_sha256 {
  uint32_t h[8];
  uint64_t bytes;
  unsigned char block[64];
  size_t used;
} bench_sha256;

static const uint32_t bench_sha256_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

static inline uint32_t bench_ror(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

/* One 64-byte block.  Eight rounds per step with the variables renamed, not moved, and the schedule kept
 * in 16 words computed as it goes (as gnulib's sha256.c does): about gnulib's speed. */
#define BENCH_S0(x) (bench_ror(x, 2) ^ bench_ror(x, 13) ^ bench_ror(x, 22))
#define BENCH_S1(x) (bench_ror(x, 6) ^ bench_ror(x, 11) ^ bench_ror(x, 25))
#define BENCH_G0(x) (bench_ror(x, 7) ^ bench_ror(x, 18) ^ ((x) >> 3))
#define BENCH_G1(x) (bench_ror(x, 17) ^ bench_ror(x, 19) ^ ((x) >> 10))
#define BENCH_W(i) (w[(i)&15] += BENCH_G1(w[((i)-2) & 15]) + w[((i)-7) & 15] + BENCH_G0(w[((i)-15) & 15]))
#define BENCH_R(a, b, c, d, e, f, g, h, i, wi)                                      \
  do {                                                                              \
    uint32_t t1 = h + BENCH_S1(e) + (g ^ (e & (f ^ g))) + bench_sha256_k[i] + (wi); \
    d += t1;                                                                        \
    h = t1 + BENCH_S0(a) + ((a & b) | (c & (a | b)));                               \
  } while (0)

static inline void bench_sha256_block(uint32_t hs[8], const unsigned char *p) {
  uint32_t w[16];
  for (int i = 0; i < 16; i++)
    w[i] =
        (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 | (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
  uint32_t a = hs[0], b = hs[1], c = hs[2], d = hs[3], e = hs[4], f = hs[5], g = hs[6], h = hs[7];
  for (int i = 0; i < 16; i += 8) {
    BENCH_R(a, b, c, d, e, f, g, h, i, w[i]);
    BENCH_R(h, a, b, c, d, e, f, g, i + 1, w[i + 1]);
    BENCH_R(g, h, a, b, c, d, e, f, i + 2, w[i + 2]);
    BENCH_R(f, g, h, a, b, c, d, e, i + 3, w[i + 3]);
    BENCH_R(e, f, g, h, a, b, c, d, i + 4, w[i + 4]);
    BENCH_R(d, e, f, g, h, a, b, c, i + 5, w[i + 5]);
    BENCH_R(c, d, e, f, g, h, a, b, i + 6, w[i + 6]);
    BENCH_R(b, c, d, e, f, g, h, a, i + 7, w[i + 7]);
  }
  for (int i = 16; i < 64; i += 8) {
    BENCH_R(a, b, c, d, e, f, g, h, i, BENCH_W(i));
    BENCH_R(h, a, b, c, d, e, f, g, i + 1, BENCH_W(i + 1));
    BENCH_R(g, h, a, b, c, d, e, f, i + 2, BENCH_W(i + 2));
    BENCH_R(f, g, h, a, b, c, d, e, i + 3, BENCH_W(i + 3));
    BENCH_R(e, f, g, h, a, b, c, d, i + 4, BENCH_W(i + 4));
    BENCH_R(d, e, f, g, h, a, b, c, i + 5, BENCH_W(i + 5));
    BENCH_R(c, d, e, f, g, h, a, b, i + 6, BENCH_W(i + 6));
    BENCH_R(b, c, d, e, f, g, h, a, i + 7, BENCH_W(i + 7));
  }
  hs[0] += a, hs[1] += b, hs[2] += c, hs[3] += d, hs[4] += e, hs[5] += f, hs[6] += g, hs[7] += h;
}

static inline void bench_sha256_init(bench_sha256 *s) {
  static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  memcpy(s->h, h0, sizeof h0);
  s->bytes = 0;
  s->used = 0;
}

static inline void bench_sha256_update(bench_sha256 *s, const void *data, size_t len) {
  const unsigned char *p = data;
  s->bytes += len;
  if (s->used) {
    size_t take = 64 - s->used < len ? 64 - s->used : len;
    memcpy(s->block + s->used, p, take);
    s->used += take, p += take, len -= take;
    if (s->used < 64) return;
    bench_sha256_block(s->h, s->block);
    s->used = 0;
  }
  for (; len >= 64; p += 64, len -= 64) bench_sha256_block(s->h, p);
  memcpy(s->block, p, len);
  s->used = len;
}

static inline void bench_sha256_final(bench_sha256 *s, unsigned char out[32]) {
  uint64_t bits = s->bytes * 8;
  unsigned char pad[72] = {0x80};
  size_t padlen = (s->used < 56 ? 56 : 120) - s->used;
  bench_sha256_update(s, pad, padlen);
  unsigned char len[8];
  for (int i = 0; i < 8; i++) len[i] = (unsigned char)(bits >> (56 - 8 * i));
  bench_sha256_update(s, len, 8);
  for (int i = 0; i < 8; i++)
    for (int b = 0; b < 4; b++) out[4 * i + b] = (unsigned char)(s->h[i] >> (24 - 8 * b));
}

#endif
