// Minimal "--key value" / "--flag" parser for headlab-cli. Unknown options are errors.
#pragma once
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace headlab::cli {

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
        if (i + 1 >= argv.size()) throw std::invalid_argument("option --" + name + " needs a value");
        m_values[name] = argv[++i];
      } else {
        throw std::invalid_argument("unknown option --" + name);
      }
    }
  }
  bool has(const std::string& k) const { return m_values.count(k) > 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    auto it = m_values.find(k);
    return it == m_values.end() ? fallback : it->second;
  }
  std::string require(const std::string& k) const {
    if (!has(k)) throw std::invalid_argument("missing --" + k);
    return get(k);
  }
  long long integer(const std::string& k, long long fallback) const {
    if (!has(k)) return fallback;
    try {
      size_t used;
      long long v = std::stoll(get(k), &used);
      if (used != get(k).size()) throw std::invalid_argument("");
      return v;
    } catch (const std::exception&) {
      throw std::invalid_argument("--" + k + " expects an integer, got '" + get(k) + "'");
    }
  }
  const std::vector<std::string>& positional() const { return m_positional; }

 private:
  std::map<std::string, std::string> m_values;
  std::vector<std::string> m_positional;
};

}  // namespace headlab::cli
