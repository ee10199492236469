fn main() { eprintln!("rovn-bench: not built yet"); std::process::exit(1) }
