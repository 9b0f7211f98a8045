/* SHA-256 as FIPS 180-4 defines it (sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2). See
 * kit_sha256.h. */
#include "kit_sha256.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK_BYTES (64 * 1024)

/* The first 32 bits of the fractional parts of the cube roots of the first 64 primes
 * (FIPS 180-4, 4.2.2). */
static const uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

/* The first 32 bits of the fractional parts of the square roots of the first 8 primes
 * (FIPS 180-4, 5.3.3). */
static const uint32_t kInitial[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                     0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

static uint32_t rotr(uint32_t x, unsigned n) { return (x >> n) | (x << (32 - n)); }

static uint32_t big_endian_32(const unsigned char* bytes) {
  return (uint32_t)bytes[0] << 24 | (uint32_t)bytes[1] << 16 | (uint32_t)bytes[2] << 8 |
         (uint32_t)bytes[3];
}

/* One 64-byte block into the state (FIPS 180-4, 6.2.2). */
static void compress(uint32_t state[8], const unsigned char* block) {
  uint32_t w[64];
  for (int t = 0; t < 16; ++t) w[t] = big_endian_32(block + 4 * t);
  for (int t = 16; t < 64; ++t) {
    uint32_t s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3);
    uint32_t s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10);
    w[t] = w[t - 16] + s0 + w[t - 7] + s1;
  }
  uint32_t a = state[0], b = state[1], c = state[2], d = state[3], e = state[4],
           f = state[5], g = state[6], h = state[7];
  for (int t = 0; t < 64; ++t) {
    uint32_t sum1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25);
    uint32_t choose = (e & f) ^ (~e & g);
    uint32_t t1 = h + sum1 + choose + kRound[t] + w[t];
    uint32_t sum0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22);
    uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
    uint32_t t2 = sum0 + majority;
    h = g, g = f, f = e, e = d + t1, d = c, c = b, b = a, a = t1 + t2;
  }
  state[0] += a, state[1] += b, state[2] += c, state[3] += d;
  state[4] += e, state[5] += f, state[6] += g, state[7] += h;
}

void kit_sha256_init(kit_sha256* context) {
  memcpy(context->state, kInitial, sizeof(kInitial));
  context->length = 0;
  context->used = 0;
}

void kit_sha256_update(kit_sha256* context, const void* data, size_t size) {
  const unsigned char* bytes = data;
  context->length += (uint64_t)size;
  if (context->used > 0) { /* complete the block begun before */
    size_t taken = 64 - context->used;
    if (taken > size) taken = size;
    memcpy(context->block + context->used, bytes, taken);
    context->used += taken, bytes += taken, size -= taken;
    if (context->used < 64) return;
    compress(context->state, context->block);
    context->used = 0;
  }
  for (; size >= 64; bytes += 64, size -= 64) compress(context->state, bytes);
  memcpy(context->block, bytes, size);
  context->used = size;
}

void kit_sha256_final(kit_sha256* context, unsigned char digest[KIT_SHA256_SIZE]) {
  /* The message length in bits, modulo 2^64 as the standard's 64-bit field holds it:
   * taken before padding, which is not part of the message. */
  uint64_t bits = context->length << 3;
  /* A 1 bit, zeros, then the length in the block's last 8 bytes: a second block when
   * fewer than 9 bytes are left in this one (55 bytes fit in one, 56 do not). */
  context->block[context->used++] = 0x80;
  if (context->used > 56) {
    memset(context->block + context->used, 0, 64 - context->used);
    compress(context->state, context->block);
    context->used = 0;
  }
  memset(context->block + context->used, 0, 56 - context->used);
  for (int i = 0; i < 8; ++i) context->block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
  compress(context->state, context->block);
  for (int i = 0; i < 8; ++i) {
    for (int j = 0; j < 4; ++j) {
      digest[4 * i + j] = (unsigned char)(context->state[i] >> (24 - 8 * j));
    }
  }
  kit_sha256_init(context);
}

void kit_sha256_hex(const unsigned char digest[KIT_SHA256_SIZE],
                    char hex[KIT_SHA256_HEX_SIZE]) {
  static const char digits[] = "0123456789abcdef";
  for (int i = 0; i < KIT_SHA256_SIZE; ++i) {
    hex[2 * i] = digits[digest[i] >> 4];
    hex[2 * i + 1] = digits[digest[i] & 0x0F];
  }
  hex[2 * KIT_SHA256_SIZE] = '\0';
}

int kit_sha256_file(const char* path, char hex[KIT_SHA256_HEX_SIZE], char* error,
                    size_t error_size) {
  unsigned char* chunk = malloc(CHUNK_BYTES); /* not on the stack: a thread's may be small */
  if (chunk == NULL) {
    snprintf(error, error_size, "out of memory hashing %s", path);
    return -1;
  }
  errno = 0;
  FILE* file = fopen(path, "rb");
  if (file == NULL) {
    int failure = errno;
    snprintf(error, error_size, "cannot read %s: %s", path,
             failure ? strerror(failure) : "cannot open it");
    free(chunk);
    errno = failure;
    return -1;
  }
  kit_sha256 context;
  kit_sha256_init(&context);
  size_t got;
  errno = 0;
  while ((got = fread(chunk, 1, CHUNK_BYTES, file)) > 0) {
    kit_sha256_update(&context, chunk, got);
  }
  int failed = ferror(file), failure = errno;
  fclose(file);
  free(chunk);
  if (failed) {
    snprintf(error, error_size, "cannot read %s: %s", path,
             failure ? strerror(failure) : "a read failed");
    errno = failure;
    return -1;
  }
  unsigned char digest[KIT_SHA256_SIZE];
  kit_sha256_final(&context, digest);
  kit_sha256_hex(digest, hex);
  return 0;
}
