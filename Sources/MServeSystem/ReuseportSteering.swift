#if canImport(Glibc)
    import Glibc
#endif

/// A classic BPF program attached to a SO_REUSEPORT group that picks, for each new connection, one
/// of the sockets of the slots still served, by index in the kernel's array of the group's sockets.
/// Without it the kernel hashes over every socket in the group, including the one a retiring
/// worker (TTOU) is about to close: a handshake completing in the instant between its last accept
/// and the close is reset (unless net.ipv4.tcp_migrate_req is 1).  With it, a socket leaves the
/// selection first and is closed only once its worker has drained it and exited.
package enum ReuseportSteering {
    private struct Instruction { var code: UInt16; var jt: UInt8; var jf: UInt8; var k: UInt32 }
    private struct Program { var len: UInt16; var filter: UnsafeMutablePointer<Instruction> }

    private static let ld: UInt16 = 0x00, ldAbsWord: UInt16 = 0x20, ldAbsHalf: UInt16 = 0x28
    private static let jeqK: UInt16 = 0x15, rshK: UInt16 = 0x74, modK: UInt16 = 0x94, retK: UInt16 = 0x06
    private static let rxhash = UInt32(bitPattern: -0x1000 + 32)  // SKF_AD_OFF + SKF_AD_RXHASH
    private static let netOffset: Int32 = -0x100000  // SKF_NET_OFF
    private static let soAttachReuseportCBPF: Int32 = 51

    /// Attaches to the group of `fd` a program choosing among `indices` (positions in the group's
    /// array).  The key is the packet's flow hash, or the TCP source port where the hash is 0 (a NIC
    /// without receive hashing); an empty list falls back to the kernel's own choice.
    package static func attach(to fd: Int32, indices: [Int], ipv6: Bool) throws {
        var code: [Instruction] = [
            Instruction(code: ldAbsWord, jt: 0, jf: 0, k: rxhash),
            Instruction(code: jeqK, jt: 0, jf: 2, k: 0),
            Instruction(code: ldAbsHalf, jt: 0, jf: 0, k: UInt32(bitPattern: netOffset + (ipv6 ? 40 : 20))),
            Instruction(code: rshK, jt: 0, jf: 0, k: 1),  // connect() picks even ports: drop the low bit
            Instruction(code: modK, jt: 0, jf: 0, k: UInt32(max(indices.count, 1)))
        ]
        for (k, index) in indices.enumerated() {
            code.append(Instruction(code: jeqK, jt: 0, jf: 1, k: UInt32(k)))
            code.append(Instruction(code: retK, jt: 0, jf: 0, k: UInt32(index)))
        }
        code.append(Instruction(code: retK, jt: 0, jf: 0, k: UInt32.max))  // out of range: the kernel hashes
        let rc = code.withUnsafeMutableBufferPointer { buf -> Int32 in
            var prog = Program(len: UInt16(buf.count), filter: buf.baseAddress!)
            return setsockopt(fd, SOL_SOCKET, soAttachReuseportCBPF, &prog, socklen_t(MemoryLayout<Program>.size))
        }
        guard rc == 0 else { throw SystemError("cannot attach the SO_REUSEPORT steering program", errno: errno) }
    }
}
