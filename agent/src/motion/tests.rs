use super::*;
use models::BgrImage;

const W: u32 = 640;
const H: u32 = 360;

/// A textured still scene (a gradient with stripes), `bright` levels brighter, with ±`noise` per pixel.
fn scene(bright: i32, noise: i32, seed: &mut u64, object: Option<(u32, u32, u32)>) -> BgrImage {
    let mut data = vec![0u8; (W * H * 3) as usize];
    for y in 0..H {
        for x in 0..W {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            let n = if noise > 0 { (*seed % (2 * noise as u64 + 1)) as i32 - noise } else { 0 };
            let base = 60 + (x * 100 / W) as i32 + if (y / 20) % 2 == 0 { 30 } else { 0 };
            let mut v = base + bright + n;
            if let Some((ox, oy, size)) = object {
                if x >= ox && x < ox + size && y >= oy && y < oy + size {
                    v = 230 + n;
                }
            }
            let v = v.clamp(0, 255) as u8;
            let i = ((y * W + x) * 3) as usize;
            data[i..i + 3].copy_from_slice(&[v, v, v]);
        }
    }
    BgrImage::new(W, H, data).unwrap_or_else(|e| panic!("{e}"))
}

fn detector(masks: Vec<Vec<[f64; 2]>>) -> MotionDetector {
    MotionDetector::new(&Motion { masks, ..Motion::default() })
}

#[test]
fn sensor_noise_and_light_drift_are_not_motion() {
    let mut m = detector(Vec::new());
    let mut seed = 7;
    let mut moving = 0;
    for i in 0..120 {
        // Slow drift of 40 levels over the clip, a sudden gain jump of 25 at frame 80, noise of ±10.
        let bright = i * 40 / 120 + if i >= 80 { 25 } else { 0 };
        let r = m.observe(&scene(bright, 10, &mut seed, None).view());
        if i >= WARM_UP as i32 && r.moving {
            moving += 1;
        }
    }
    assert_eq!(moving, 0);
}

#[test]
fn an_object_moving_in_is_motion_and_a_masked_one_is_not() {
    let mut seed = 3;
    let mut m = detector(Vec::new());
    for i in 0..10 {
        let r = m.observe(&scene(0, 6, &mut seed, None).view());
        assert_eq!(r.moving, i < WARM_UP, "frame {i}: {r:?}");
    }
    // A 40×40 object (0.7 % of the frame) appears and moves.
    let r = m.observe(&scene(0, 6, &mut seed, Some((300, 150, 40))).view());
    assert!(r.moving, "{r:?}");
    let r = m.observe(&scene(0, 6, &mut seed, Some((320, 150, 40))).view());
    assert!(r.moving, "{r:?}");

    let mask = vec![vec![[0.4, 0.3], [0.6, 0.3], [0.6, 0.6], [0.4, 0.6]]];
    let mut m = detector(mask);
    for _ in 0..10 {
        m.observe(&scene(0, 6, &mut seed, None).view());
    }
    let r = m.observe(&scene(0, 6, &mut seed, Some((300, 150, 40))).view());
    assert!(!r.moving, "inside the mask: {r:?}");
}

#[test]
fn rain_like_specks_are_not_motion() {
    let mut seed = 11;
    let mut m = detector(Vec::new());
    for _ in 0..10 {
        m.observe(&scene(0, 6, &mut seed, None).view());
    }
    // 150 bright specks of 2×2 pixels scattered over the frame.
    let mut img = scene(0, 6, &mut seed, None);
    let mut data = img.as_bytes().to_vec();
    for k in 0..150u64 {
        let (x, y) = ((k * 7919 % 636) as u32, (k * 104_729 % 356) as u32);
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let i = (((y + dy) * W + x + dx) * 3) as usize;
            data[i..i + 3].copy_from_slice(&[255, 255, 255]);
        }
    }
    img = BgrImage::new(W, H, data).unwrap_or_else(|e| panic!("{e}"));
    let r = m.observe(&img.view());
    assert!(!r.moving, "{r:?}");
}

#[test]
fn a_car_that_stops_is_absorbed_into_the_background_after_a_while_and_moves_again_when_it_leaves() {
    let mut seed = 5;
    let mut m = detector(Vec::new());
    for _ in 0..10 {
        m.observe(&scene(0, 4, &mut seed, None).view());
    }
    let parked = || Some((200, 100, 120));
    assert!(m.observe(&scene(0, 4, &mut seed, parked()).view()).moving);
    let still_moving_after = (0..2000).position(|_| !m.observe(&scene(0, 4, &mut seed, parked()).view()).moving);
    assert!(still_moving_after.is_some_and(|n| (5..=20).contains(&n)), "absorbed after {still_moving_after:?} frames");
    for _ in 0..20 {
        assert!(!m.observe(&scene(0, 4, &mut seed, parked()).view()).moving);
    }
    // It drives off: where it stood is motion again.
    assert!(m.observe(&scene(0, 4, &mut seed, Some((260, 100, 120))).view()).moving);
    assert!(m.observe(&scene(0, 4, &mut seed, None).view()).moving);
}
