// The C interface of kit_sentencepiece.h over sentencepiece::SentencePieceProcessor.
// C++17. No exception leaves this file: the library's failures come back as statuses,
// and running out of memory (std::bad_alloc) as NULL or -1.
#include "kit_sentencepiece.h"

#include <sentencepiece_processor.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

struct kit_sentencepiece {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

constexpr int kPad = 0, kUnk = 1, kBos = 2, kEos = 3;
const char* const kSpecials[] = {"<pad>", "<unk>", "<s>", "</s>"};
const char kUnknownText[] = "\xEF\xBF\xBD";  // U+FFFD, as the kit writes an <unk>

// Appends the library's text of `kept` to `text` and empties `kept`.
bool flush(const sentencepiece::SentencePieceProcessor& processor,
           std::vector<int>* kept, std::string* text) {
  if (kept->empty()) return true;
  std::string piece_text;
  if (!processor.Decode(*kept, &piece_text).ok()) return false;
  text->append(piece_text);
  kept->clear();
  return true;
}

}  // namespace

extern "C" {

kit_sentencepiece* kit_sentencepiece_load(const char* path, char* error,
                                          size_t error_size) {
  try {
    auto* model = new kit_sentencepiece;
    const auto status = model->processor.Load(path);
    if (!status.ok()) {
      std::snprintf(error, error_size, "%s is not a SentencePiece model: %s", path,
                    status.ToString().c_str());
      delete model;
      return nullptr;
    }
    const auto& processor = model->processor;
    bool kit_ids = processor.pad_id() == kPad && processor.unk_id() == kUnk &&
                   processor.bos_id() == kBos && processor.eos_id() == kEos &&
                   processor.GetPieceSize() > kEos;
    for (int id = 0; kit_ids && id <= kEos; ++id) {
      kit_ids = processor.IdToPiece(id) == kSpecials[id];
    }
    if (!kit_ids) {
      std::snprintf(error, error_size, "%s: a SentencePiece model for the kit has the "
                    "pieces <pad>, <unk>, <s>, </s> at ids 0-3: not a model the kit "
                    "trained", path);
      delete model;
      return nullptr;
    }
    return model;
  } catch (const std::bad_alloc&) {
    std::snprintf(error, error_size, "out of memory loading %s", path);
    return nullptr;
  }
}

void kit_sentencepiece_free(kit_sentencepiece* model) { delete model; }

int kit_sentencepiece_size(const kit_sentencepiece* model) {
  return model->processor.GetPieceSize();
}

int kit_sentencepiece_encode(const kit_sentencepiece* model, const char* text,
                             size_t length, int32_t* ids, int capacity, int* unknown) {
  try {
    std::vector<int> found;
    if (!model->processor.Encode(std::string_view(text, length), &found).ok()) return -1;
    int missing = 0;
    for (size_t i = 0; i < found.size(); ++i) {
      missing += found[i] == kUnk;
      if (i < static_cast<size_t>(capacity)) ids[i] = found[i];
    }
    *unknown = missing;
    return static_cast<int>(found.size());
  } catch (const std::bad_alloc&) {
    return -1;
  }
}

char* kit_sentencepiece_text(const kit_sentencepiece* model, const int32_t* ids,
                             int count) {
  try {
    const auto& processor = model->processor;
    const int size = processor.GetPieceSize();
    std::string text;
    std::vector<int> kept;  // the run of ordinary pieces since the last <unk>
    for (int i = 0; i < count && ids[i] != kEos; ++i) {
      const int id = ids[i];
      if (id == kPad || id == kBos) continue;
      if (id == kUnk || id < 0 || id >= size) {
        if (!flush(processor, &kept, &text)) return nullptr;
        text.append(kUnknownText);
      } else {
        kept.push_back(id);
      }
    }
    if (!flush(processor, &kept, &text)) return nullptr;
    char* result = static_cast<char*>(std::malloc(text.size() + 1));
    if (result != nullptr) std::memcpy(result, text.c_str(), text.size() + 1);
    return result;
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}

}  // extern "C"
