/* The decode loop of a kit bundle's model through LiteRT's C API (CompiledModel):
 * `encode` once per source, then `decode_step` once per token, greedy.
 *
 * Every tensor lives in host memory this code allocates and LiteRT reads and writes in
 * place: encode's outputs are bound as decode_step's inputs of the same name, and each
 * KV cache is one buffer bound as both decode_step's input and its output of that name
 * (the file updates it in place at `position`), so no tensor is copied between steps.
 */
#ifndef KIT_LOOP_H_
#define KIT_LOOP_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct kit_decoder kit_decoder;

/* Loads `model_path`, compiles it for the CPU with `num_threads` threads (0: LiteRT's
 * default) and binds the signature pair `encode` / `decode_step`. Returns 0, or -1 with
 * one line in `error` (then *decoder is NULL). */
int kit_decoder_open(const char* model_path, const char* encode, const char* decode_step,
                     int num_threads, kit_decoder** decoder, char* error,
                     size_t error_size);

/* S, the number of source ids `encode` reads, and V, the length of the logits. */
int kit_decoder_source_length(const kit_decoder* decoder);
int kit_decoder_vocab_size(const kit_decoder* decoder);

/* Greedy decoding of one source of S ids: BOS at position 0, then each step's argmax
 * (the first of equal maxima) fed back, until EOS or `max_new_tokens` tokens. Writes the
 * ids to `ids` (EOS included when it was reached) and returns their count, or -1 with
 * one line in `error`. */
int kit_decoder_greedy(kit_decoder* decoder, const int32_t* source_ids, int bos_id,
                       int eos_id, int max_new_tokens, int32_t* ids, char* error,
                       size_t error_size);

void kit_decoder_close(kit_decoder* decoder);

#ifdef __cplusplus
}
#endif

#endif /* KIT_LOOP_H_ */
