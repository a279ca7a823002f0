//! Checks on a server's raw answer that sntpc does not make. Pure: the
//! bytes in, a verdict out.

use super::report::QueryError;

/// An NTP packet without extensions: what sntpc accepts.
pub const NTP_PACKET_LEN: usize = 48;

/// Rejects answers whose timestamps cannot be true. sntpc checks the
/// origin, mode, stratum and reference time, but not that the server
/// received the request (T2, bytes 32..40) no later than it sent the answer
/// (T3, bytes 40..48). A T2 after T3 is impossible for an honest server and
/// skews both the offset and the round trip it yields, so such an answer
/// must not count.
pub fn check_answer(packet: &[u8]) -> Result<(), QueryError> {
    let timestamp = |at: usize| {
        packet
            .get(at..at + 8)
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
    };
    let (Some(receive), Some(transmit)) = (timestamp(32), timestamp(40)) else {
        return Err(QueryError::BadPacket("the packet is too short".into()));
    };
    // Wrapping difference, as NTP compares timestamps: an answer straddling
    // the 2036 era rollover is still ordered correctly.
    if receive.wrapping_sub(transmit).cast_signed() > 0 {
        return Err(QueryError::BadPacket(
            "its receive time is later than its transmit time, which is impossible".into(),
        ));
    }
    Ok(())
}

/// How far the server may be from true time by its own account: half its
/// root delay plus its root dispersion (RFC 5905 §11.2), in milliseconds.
/// Both are NTP short format (16.16 seconds) at bytes 4..8 and 8..12. A
/// packet too short to hold them claims nothing (the caller has refused it).
pub fn root_distance_ms(packet: &[u8]) -> f64 {
    let short = |at: usize| {
        packet
            .get(at..at + 4)
            .and_then(|b| <[u8; 4]>::try_from(b).ok())
            .map_or(0.0, |b| {
                f64::from(u32::from_be_bytes(b)) / 65_536.0 * 1000.0
            })
    };
    short(4) / 2.0 + short(8)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server answer with the given receive (T2) and transmit (T3) times.
    fn answer(t2: u64, t3: u64) -> [u8; NTP_PACKET_LEN] {
        let mut p = [0u8; NTP_PACKET_LEN];
        p[0] = (4 << 3) | 4;
        p[1] = 2;
        p[32..40].copy_from_slice(&t2.to_be_bytes());
        p[40..48].copy_from_slice(&t3.to_be_bytes());
        p
    }

    const NOW: u64 = 0xEC00_0000_8000_0000; // 2025, half a second in

    #[test]
    fn receive_after_transmit_is_refused() {
        let later = NOW + (60 << 32);
        assert_eq!(
            check_answer(&answer(later, NOW)),
            Err(QueryError::BadPacket(
                "its receive time is later than its transmit time, which is impossible".into()
            ))
        );
        // By the smallest step NTP can express, too.
        assert!(check_answer(&answer(NOW + 1, NOW)).is_err());
    }

    #[test]
    fn receive_at_or_before_transmit_is_fine() {
        assert_eq!(check_answer(&answer(NOW, NOW)), Ok(()));
        assert_eq!(check_answer(&answer(NOW, NOW + (1 << 20))), Ok(()));
        // Received just before the era rolls over, sent just after it.
        assert_eq!(check_answer(&answer(u64::MAX - (1 << 31), 1 << 31)), Ok(()));
        assert!(check_answer(&answer(1 << 31, u64::MAX - (1 << 31))).is_err());
    }

    #[test]
    fn root_distance_is_half_the_delay_plus_the_dispersion() {
        let mut p = answer(NOW, NOW);
        // Root delay 0.5 s (0x8000 of a second), dispersion 1/256 s.
        p[4..8].copy_from_slice(&0x0000_8000u32.to_be_bytes());
        p[8..12].copy_from_slice(&0x0000_0100u32.to_be_bytes());
        assert_eq!(root_distance_ms(&p), 250.0 + 3.906_25);
        assert_eq!(root_distance_ms(&answer(NOW, NOW)), 0.0);
        assert_eq!(root_distance_ms(&p[..6]), 0.0);
    }

    #[test]
    fn a_short_packet_is_refused_not_read_past() {
        let full = answer(NOW, NOW);
        assert!(check_answer(&full[..47]).is_err());
        assert!(check_answer(&[]).is_err());
    }
}
