//! The front-end: `cargo run --example frontend -- -h`. The code is
//! [`just_hungry::apps::frontend`], which the installed `just-hungry frontend` runs too.

fn main() -> std::process::ExitCode {
    just_hungry::apps::frontend::main()
}
