//! The pushgateway binary; everything it does is in the library's
//! [`pushgateway::app`].

#![deny(unsafe_code)]

fn main() -> std::process::ExitCode {
    pushgateway::app::main()
}
