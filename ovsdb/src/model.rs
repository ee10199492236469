//! Typed rows: the trait the generated models implement and the conversions they use.
