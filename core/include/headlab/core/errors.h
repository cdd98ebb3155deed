// Typed exceptions thrown by core. Messages say what, where, expected and got, on one line.
#pragma once
#include <stdexcept>
#include <string>

namespace headlab {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
class ConfigError : public Error { using Error::Error; };
class WeightError : public Error { using Error::Error; };
class ShapeError : public Error { using Error::Error; };
class IoError : public Error { using Error::Error; };
class TokenizerError : public Error { using Error::Error; };
class InputError : public Error { using Error::Error; };
class NumericError : public Error { using Error::Error; };
class CancelledError : public Error {
 public:
  CancelledError() : Error("cancelled") {}
};

}  // namespace headlab
