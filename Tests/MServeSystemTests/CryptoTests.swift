import MServeSystem
import Testing

/// OpenSSL's SHA-256 through Crypto (the weights' checksums, the keys file, signed requests):
/// FIPS 180's known answers.
struct CryptoTests {
    @Test func sha256KnownAnswers() {
        func hex(_ s: String) -> String { Crypto.hex(Crypto.sha256(Array(s.utf8))) }
        #expect(hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(
            hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(
            Crypto.hex(Crypto.sha256([UInt8](repeating: UInt8(ascii: "a"), count: 1_000_000)))
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }

    @Test func hexGoesBothWays() {
        let bytes: [UInt8] = [0, 1, 0x7F, 0x80, 0xAB, 0xFF]
        #expect(Crypto.hex(bytes) == "00017f80abff")
        #expect(Crypto.bytes(hex: "00017F80abff") == bytes)
        #expect(Crypto.bytes(hex: "0g") == nil && Crypto.bytes(hex: "abc") == nil)
    }
}
