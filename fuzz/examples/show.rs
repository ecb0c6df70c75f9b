//! Shows what the `request` fixture answers to datagrams saved in files (seeds, crash
//! artifacts): `cargo run --example show -- FILE...` (in `fuzz/`). Prints the source and
//! health state the ID picked, the query and the reply as hickory reads them, and the
//! invariant check's verdict.

use hickory_proto::op::Message;

fn main() {
    let fx = gslbd_fuzz::fixture::request();
    for path in std::env::args().skip(1) {
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let pick = fx.pick(&data);
        let (src, index) = (pick.src, pick.index);
        let mut out = Vec::new();
        gslbd::server::answer_datagram(&data, src, pick.state, &mut out);
        println!("== {path}: {} bytes from {src}, state {index}", data.len());
        match Message::from_vec(&data) {
            Ok(m) => println!("query:\n{m}"),
            Err(e) => println!("query does not parse: {e}\n{}", gslbd_fuzz::hex(&data)),
        }
        match Message::from_vec(&out) {
            _ if out.is_empty() => println!("reply: none"),
            Ok(m) => println!("reply ({} bytes):\n{m}", out.len()),
            Err(e) => println!("reply does not parse: {e}\n{}", gslbd_fuzz::hex(&out)),
        }
        match gslbd_fuzz::invariants::check_reply(&data, &out, pick.rate_limited) {
            Ok(()) => println!("invariants: ok\n"),
            Err(e) => println!("invariants: BROKEN: {e}\n"),
        }
    }
}
