fn main() { eprintln!("rovn-controller: not built yet"); std::process::exit(1) }
