// Minimal "--key value" / "--flag" parser for headlab-cli. Unknown options are errors.
#pragma once
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace headlab::cli {

// A command line that does not parse (unknown option, missing value): exit status 2, where a
// failure of the work itself (headlab::Error) is 1.
class UsageError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
};

class Args {
 public:
  // `flags` take no value; every other "--name" takes the next argument.
  Args(const std::vector<std::string>& argv, const std::set<std::string>& flags,
       const std::set<std::string>& options) {
    for (size_t i = 0; i < argv.size(); ++i) {
      const std::string& a = argv[i];
      if (a.rfind("--", 0) != 0) {
        m_positional.push_back(a);
        continue;
      }
      std::string name = a.substr(2);
      if (flags.count(name)) {
        m_values[name] = "1";
      } else if (options.count(name)) {
        if (i + 1 >= argv.size()) throw UsageError("option --" + name + " needs a value");
        m_values[name] = argv[++i];
      } else {
        throw UsageError("unknown option --" + name);
      }
    }
  }
  bool has(const std::string& k) const { return m_values.count(k) > 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = m_values.find(k);
    return it == m_values.end() ? fallback : it->second;
  }
  std::string require(const std::string& k) const {
    if (!has(k)) throw UsageError("missing --" + k);
    return get(k);
  }
  long long integer(const std::string& k, long long fallback) const {
    if (!has(k)) return fallback;
    try {
      size_t used;
      long long v = std::stoll(get(k), &used);
      if (used != get(k).size()) throw UsageError("");
      return v;
    } catch (const std::exception&) {
      throw UsageError("--" + k + " expects an integer, got '" + get(k) + "'");
    }
  }
  const std::vector<std::string>& positional() const { return m_positional; }

 private:
  std::map<std::string, std::string> m_values;
  std::vector<std::string> m_positional;
};

}  // namespace headlab::cli
