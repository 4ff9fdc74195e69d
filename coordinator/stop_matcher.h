// Stop strings over streamed text: text is released as it comes except a tail that could be
// the start of a stop string, so a stop string is never sent, even in part.
#pragma once

#include <string>
#include <vector>

namespace lp {

class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops);

  // Adds `text`; returns what may be sent now. After a stop string is found, returns the text
  // before it and stopped() is true; later calls return nothing.
  std::string Feed(const std::string& text);
  // The held-back tail, at the end of generation.
  std::string Flush();
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

}  // namespace lp
