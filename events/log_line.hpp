// A line of the process's log (stderr), written whole as the statement that makes it ends:
//   log_line() << "omniroute: partition " << p << ": " << what << "\n";
// The partitions' threads log at once, and std::cerr, unbuffered, wrote each piece of a line
// as it came, so that two lines could come out woven together (seen: "partition 3 recovered in
// omniroute: partition 0.00203159 s: its snapshot at ..."). One fwrite a line: stdio locks the
// stream for it, and std::cerr, synchronised with stdio, goes through the same stream.
#pragma once

#include <cstdio>
#include <sstream>
#include <string>

namespace omniroute {

class LogLine {
 public:
  LogLine() = default;
  LogLine(const LogLine&) = delete;
  LogLine& operator=(const LogLine&) = delete;
  ~LogLine() {
    const std::string line = text_.str();
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  template <typename T>
  LogLine& operator<<(const T& part) {
    text_ << part;
    return *this;
  }

 private:
  std::ostringstream text_;
};

inline LogLine log_line() { return {}; }

}  // namespace omniroute
