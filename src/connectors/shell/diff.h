// Unified diffs of small text files for the preview of a shell command's effect.
//
// Hand-written rather than spawning GNU diff: the output is part of what a person approves,
// so it must not depend on which diffutils version a host has, and a preview must not fork
// a process per changed file.
#pragma once

#include <string>
#include <string_view>

namespace airlock::shell {

// "--- a/PATH\n+++ b/PATH\n" then @@ hunks with `context` lines of context, in the format
// of `diff -u` (including "\ No newline at end of file"); "" when the texts are equal.
// Minimal (Myers) while the edit distance stays moderate; past that the differing middle is
// shown as one block replaced by another, still a correct patch. The result is valid UTF-8:
// bytes of invalid sequences become U+FFFD.
std::string UnifiedDiff(std::string_view before, std::string_view after, const std::string& path,
                        int context = 3);

// A NUL byte among the first 8 KiB: the test GNU diff and git use for binary content.
bool LooksBinary(std::string_view content);

// A valid UTF-8 copy of `s`; each byte that does not start a valid sequence becomes U+FFFD.
std::string SanitizeUtf8(std::string_view s);

}  // namespace airlock::shell
