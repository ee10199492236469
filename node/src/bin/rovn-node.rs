fn main() { eprintln!("rovn-node: not built yet"); std::process::exit(1) }
