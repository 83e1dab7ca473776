//! Free loopback ports for the servers a benchmark starts, shared by the benchmarks (each includes this file).

/// `N` distinct loopback TCP ports that were free a moment ago. Every listener is held until all are bound: taken
/// one at a time, a port just released can come back, and two servers would be told to listen on the same one.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let listeners: Vec<_> = (0..N).map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap()).collect();
    std::array::from_fn(|n| listeners[n].local_addr().unwrap().port())
}
