#include "core/metadata.h"

#include <algorithm>

namespace keel {

bool is_valid_metadata_key(std::string_view key) {
  if (key.empty() || key.size() > kMetadataKeyLengthMax) return false;
  return std::all_of(key.begin(), key.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
}

MetadataError normalize_metadata(Metadata* m) {
  if (m->size() > kMetadataEntriesMax) return MetadataError::too_many_entries;
  for (const auto& [k, v] : *m) {
    if (!is_valid_metadata_key(k)) return MetadataError::key_invalid;
    if (v.size() > kMetadataValueLengthMax) return MetadataError::value_too_long;
  }
  std::sort(m->begin(), m->end());
  for (size_t i = 1; i < m->size(); ++i) {
    if ((*m)[i - 1].first == (*m)[i].first) return MetadataError::duplicate_key;
  }
  return MetadataError::ok;
}

}  // namespace keel
