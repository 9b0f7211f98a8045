/* A kit bundle's SentencePiece side, through the SentencePiece C++ library (Debian's
 * and Ubuntu's libsentencepiece-dev; built from source for Android and iOS): a C
 * interface, so the rest of the example stays C11. Built into kit_decode where CMake
 * finds the library (option KIT_SENTENCEPIECE); see CMakeLists.txt.
 *
 * The kit trains its SentencePiece models with the special pieces <pad>, <unk>, <s>,
 * </s> at ids 0-3 and no normalization ("identity"), so the ids are the library's own:
 * nothing is shifted or renamed here (kit/tokenizers/sentencepiece.py).
 */
#ifndef KIT_SENTENCEPIECE_H_
#define KIT_SENTENCEPIECE_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kit_sentencepiece kit_sentencepiece;

/* Loads the model file at `path` and checks that its pieces 0-3 are the kit's special
 * tokens with those ids. NULL with one line in `error` otherwise. */
kit_sentencepiece* kit_sentencepiece_load(const char* path, char* error,
                                          size_t error_size);
void kit_sentencepiece_free(kit_sentencepiece* model);

/* The number of pieces (the tokenizer's vocabulary size). */
int kit_sentencepiece_size(const kit_sentencepiece* model);

/* The ids of text[0..length) (UTF-8, checked by the caller), no BOS or EOS: the first
 * `capacity` of them are written to `ids`; returns how many the text makes (which may
 * be more than `capacity`), or -1 when the library fails or memory runs out. Sets
 * *unknown to the number of <unk> ids among them. */
int kit_sentencepiece_encode(const kit_sentencepiece* model, const char* text,
                             size_t length, int32_t* ids, int capacity, int* unknown);

/* The text of generated ids as the kit's SentencePieceTokenizer.decode makes it: up to
 * the first EOS (id 3), pad and BOS skipped, <unk> and ids outside the vocabulary as
 * U+FFFD, the pieces between them joined by the library. NUL-terminated; the caller
 * frees it (free()); NULL when the library fails or memory runs out. */
char* kit_sentencepiece_text(const kit_sentencepiece* model, const int32_t* ids,
                             int count);

#ifdef __cplusplus
}
#endif

#endif /* KIT_SENTENCEPIECE_H_ */
