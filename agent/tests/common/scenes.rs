//! Moving clips built from the shared stills for the event tests.

use std::path::PathBuf;

use image::RgbImage;
use models::plates::rectify::homography;
use models::BgrImage;
use testkit::clips::{cached, crop, grey, load_rgb, render, render_frames, scale, shake, ClipSpec, Codec, Sprite};

/// The green plate's corners in `hy_test_img.jpg` (from the plate detector).
const GREEN_PLATE: [(f32, f32); 4] = [(1752.2, 785.9), (1867.1, 741.1), (1868.8, 811.4), (1753.8, 856.8)];
/// The car's region in `hy_test_img.jpg`, with a margin.
const CAR: (u32, u32, u32, u32) = (560, 300, 1360, 740);

/// `hy_test_img.jpg` with another plate image warped onto the car's plate.
fn replate(plate_file: &str) -> RgbImage {
    let mut scene = load_rgb(&testkit::data("scenes/hy_test_img.jpg"));
    let plate = BgrImage::open(&testkit::data(plate_file)).unwrap();
    let (pw, ph) = (plate.width() as f32, plate.height() as f32);
    // Maps scene pixels inside the plate quad to plate-image pixels.
    let h = homography(&GREEN_PLATE, &[(0.0, 0.0), (pw, 0.0), (pw, ph), (0.0, ph)]).unwrap();
    let view = plate.view();
    for y in 730..870u32 {
        for x in 1740..1880u32 {
            let (fx, fy) = (x as f64 + 0.5, y as f64 + 0.5);
            let w = h[6] * fx + h[7] * fy + h[8];
            let (u, v) = ((h[0] * fx + h[1] * fy + h[2]) / w, (h[3] * fx + h[4] * fy + h[5]) / w);
            if u >= 0.0 && v >= 0.0 && u < pw as f64 && v < ph as f64 {
                let px = &view.row(v as u32)[u as usize * 3..u as usize * 3 + 3];
                scene.put_pixel(x, y, image::Rgb([px[2], px[1], px[0]]));
            }
        }
    }
    scene
}

fn car_sprite(scene: &RgbImage) -> RgbImage {
    crop(scene, CAR.0, CAR.1, CAR.2, CAR.3)
}

fn vehicle_pass(sprite: RgbImage, start_s: f64, end_s: f64, down: bool) -> Sprite {
    // The sprite's bottom (the car's wheels) goes from 35 % to 98 % of the frame height, or back.
    let (top, bottom) = (-320.0, 330.0);
    let (from, to) = if down { (top, bottom) } else { (bottom, top) };
    Sprite { image: sprite, from: (280.0, from), to: (280.0, to), start_s, end_s }
}

/// A 1080p, 25 fps H.264 clip of `sprites` over a grey road.
fn road_1080p(seconds: f64, sprites: Vec<Sprite>) -> ClipSpec {
    ClipSpec { width: 1920, height: 1080, fps: 25, seconds, background: grey(1920, 1080, 110), sprites, codec: Codec::H264, noise: 0, drift: 0.0 }
}

/// The new-energy car (苏ED51712) driving down the frame over 3 s, `down` or back up.
pub fn car_crossing(down: bool) -> PathBuf {
    let name = if down { "car_in_1080p.mp4" } else { "car_out_1080p.mp4" };
    cached(name, |p| {
        let car = car_sprite(&load_rgb(&testkit::data("scenes/hy_test_img.jpg")));
        render(&road_1080p(4.0, vec![vehicle_pass(car, 0.0, 3.0, down)]), p)
    })
}

/// Two cars one after the other, both driving in: 苏ED51712, then the same model re-plated 京PL3N67.
pub fn two_cars() -> PathBuf {
    cached("two_cars_1080p.mp4", |p| {
        let first = car_sprite(&load_rgb(&testkit::data("scenes/hy_test_img.jpg")));
        let second = car_sprite(&replate("plates-dev/京PL3N67.jpg"));
        render(&road_1080p(8.0, vec![vehicle_pass(first, 0.0, 3.0, true), vehicle_pass(second, 4.5, 7.5, true)]), p)
    })
}

/// Two people from COCO photos walking left to right across the frame, one behind the other.
pub fn people_walking() -> PathBuf {
    cached("people_walking_720p.mp4", |p| {
        let a = scale(&crop(&load_rgb(&testkit::data("scenes/coco_000000000785.jpg")), 270, 35, 240, 355), 1.2);
        let b = scale(&crop(&load_rgb(&testkit::data("scenes/coco_000000003156.jpg")), 0, 0, 443, 640), 0.6);
        let spec = ClipSpec {
            width: 1280,
            height: 720,
            fps: 25,
            seconds: 6.0,
            background: grey(1280, 720, 120),
            sprites: vec![
                Sprite { image: a, from: (-100.0, 250.0), to: (1100.0, 250.0), start_s: 0.0, end_s: 3.0 },
                Sprite { image: b, from: (-150.0, 280.0), to: (1150.0, 280.0), start_s: 2.5, end_s: 5.5 },
            ],
            codec: Codec::H264,
            noise: 0,
            drift: 0.0,
        };
        render(&spec, p)
    })
}

/// Like [`car_crossing`] (down), but the car vanishes for 0.6 s halfway (frames with no detection).
pub fn car_crossing_with_gap() -> PathBuf {
    cached("car_in_gap_1080p.mp4", |p| {
        let car = car_sprite(&load_rgb(&testkit::data("scenes/hy_test_img.jpg")));
        let whole = vehicle_pass(car, 0.0, 3.0, true);
        let at = |t: f64| whole.from.1 + (whole.to.1 - whole.from.1) * t / 3.0;
        let first = Sprite { to: (280.0, at(1.4)), end_s: 1.4, ..whole.clone() };
        let second = Sprite { from: (280.0, at(2.0)), start_s: 2.0, ..whole };
        render(&road_1080p(4.0, vec![first, second]), p)
    })
}

/// A village road seen from a gate camera, with nothing on it: sky, a wall with windows, grass verges, the
/// road with a dashed centre line (edges everywhere, as a real scene has, for compression to flicker on).
fn empty_road_720p() -> RgbImage {
    empty_road(1280)
}

/// [`empty_road_720p`], `width` pixels wide (the verge on the right goes on).
fn empty_road(width: u32) -> RgbImage {
    RgbImage::from_fn(width, 720, |x, y| {
        let v = match y {
            0..=159 => [150 + (y / 8) as u8, 180 + (y / 10) as u8, 215],
            160..=299 if (x / 60) % 3 == 1 && (y - 160) % 70 > 20 && (y - 160) % 70 < 55 => [60, 70, 85],
            160..=299 => [190 - ((x / 40) % 2) as u8 * 12, 180, 160],
            _ if !(240..=1040).contains(&x) => [70 + ((x * 7 + y * 3) % 23) as u8, 120 + ((x + y * 5) % 19) as u8, 60],
            _ if (620..=660).contains(&x) && (y / 40) % 2 == 0 => [235, 235, 225],
            _ => [105 + ((x + y) % 7) as u8, 105, 108],
        };
        image::Rgb(v)
    })
}

/// What a gate camera shows while something is wrong with it, in [`camera_fault`].
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// The picture stops: the same frame, exactly, over and over.
    Frozen,
    /// Black, with the sensor's noise.
    Black,
    /// A near-uniform patch (a cloth on the lens) over all but the bottom strip of the view.
    Covered,
    /// The camera knocked sideways: the view shifted by a tenth of its width.
    Shifted,
}

/// 35 s of the empty road at 720p and 10 fps with sensor noise (±4): normal for 10 s, `fault` from 10 s to
/// 25 s, then normal again. H.264, except the frozen clip: MJPEG, whose frames are each encoded alone, so a
/// repeated frame decodes to the same picture, as a hung camera sends it (an H.264 encoder fed one still
/// picture keeps refining it, frame after frame).
pub fn camera_fault(fault: Fault) -> PathBuf {
    let (codec, ext) = if matches!(fault, Fault::Frozen) { (Codec::Mjpeg, "avi") } else { (Codec::H264, "mp4") };
    cached(&format!("gate_fault_{fault:?}_720p.{ext}").to_lowercase(), |p| {
        let shift = 128u32;
        let wide = empty_road(1280 + shift);
        let view = |x0: u32| crop(&wide, x0, 0, 1280, 720);
        let (normal, shifted) = (view(0), view(shift));
        let cloth = RgbImage::from_fn(1280, 720, |x, y| {
            let v = (62 + x / 160 + y / 180) as u8;
            image::Rgb(if y < 680 { [v + 8, v, v - 6] } else { normal.get_pixel(x, y).0 })
        });
        let black = grey(1280, 720, 10);
        let (fps, seconds) = (10u32, 35u64);
        let mut frozen: Option<Vec<u8>> = None;
        render_frames(1280, 720, fps, seconds * u64::from(fps), codec, p, |i, frame| {
            let faulty = (100..250).contains(&i);
            if faulty && matches!(fault, Fault::Frozen) {
                if let Some(still) = &frozen {
                    frame.copy_from_slice(still);
                    return;
                }
            }
            let picture = match fault {
                _ if !faulty => &normal,
                Fault::Frozen => &normal,
                Fault::Black => &black,
                Fault::Covered => &cloth,
                Fault::Shifted => &shifted,
            };
            frame.copy_from_slice(picture.as_raw());
            shake(frame, i, if matches!(fault, Fault::Black | Fault::Covered) && faulty { 3 } else { 4 }, 0);
            if faulty && matches!(fault, Fault::Frozen) {
                frozen = Some(frame.clone());
            }
        })
    })
}

/// A gate clip at 720p and 10 fps over the empty road, with sensor noise and a slow light drift.
fn gate_720p(seconds: f64, sprites: Vec<Sprite>, noise: u8, drift: f64) -> ClipSpec {
    ClipSpec { width: 1280, height: 720, fps: 10, seconds, background: empty_road_720p(), sprites, codec: Codec::H264, noise, drift }
}

/// The new-energy car at 720p scale.
fn small_car() -> RgbImage {
    scale(&car_sprite(&load_rgb(&testkit::data("scenes/hy_test_img.jpg"))), 0.6)
}

/// 35 s of the still road (noise ±4, 20 levels of drift), then a person walks across in 6 s.
pub fn person_after_still() -> PathBuf {
    cached("gate_person_after_still_720p.mp4", |p| {
        let person = scale(&crop(&load_rgb(&testkit::data("scenes/coco_000000000785.jpg")), 270, 35, 240, 355), 1.1);
        let walk = Sprite { image: person, from: (-260.0, 300.0), to: (1280.0, 300.0), start_s: 35.0, end_s: 41.0 };
        render(&gate_720p(43.0, vec![walk], 4, 20.0), p)
    })
}

/// The car creeping in from the top of the frame at about 2 pixels a frame, over 30 s, and stopping.
pub fn car_creeping() -> PathBuf {
    cached("gate_car_creeping_720p.mp4", |p| {
        let car = small_car();
        let creep = Sprite { image: car.clone(), from: (200.0, -450.0), to: (200.0, 270.0), start_s: 2.0, end_s: 32.0 };
        let parked = Sprite { image: car, from: (200.0, 270.0), to: (200.0, 270.0), start_s: 32.0, end_s: 36.0 };
        render(&gate_720p(36.0, vec![creep, parked], 3, 0.0), p)
    })
}

/// The car drives in, waits in view for a minute (at a barrier), then drives on out of the frame.
pub fn car_waiting_a_minute() -> PathBuf {
    cached("gate_car_waiting_720p.mp4", |p| {
        let car = small_car();
        let stop = (200.0, 230.0);
        let arrive = Sprite { image: car.clone(), from: (200.0, -450.0), to: stop, start_s: 1.0, end_s: 4.0 };
        let wait = Sprite { image: car.clone(), from: stop, to: stop, start_s: 4.0, end_s: 64.0 };
        let leave = Sprite { image: car, from: stop, to: (200.0, 720.0), start_s: 64.0, end_s: 67.0 };
        render(&gate_720p(70.0, vec![arrive, wait, leave], 3, -15.0), p)
    })
}

/// A minute of the empty road with sensor noise (±6) and the light rising by 40 levels: nothing passes.
pub fn still_road_with_noise() -> PathBuf {
    cached("gate_still_noise_720p.mp4", |p| render(&gate_720p(60.0, Vec::new(), 6, 40.0), p))
}

/// The quiet-gate benchmark stream: 170 s of the empty road at 25 fps with sensor noise (±4) and the light
/// rising by 25 levels; every 30 s something passes — the car driving in (at 30 s + `offset_s`), a person
/// (60 s + offset), the car driving out (90 s + offset), a person (120 s + offset).
pub fn quiet_gate_25fps(offset_s: f64) -> PathBuf {
    cached(&format!("quiet_gate_720p_25fps_170s_{offset_s:.0}.mp4"), |p| {
        let car = small_car();
        let person = scale(&crop(&load_rgb(&testkit::data("scenes/coco_000000000785.jpg")), 270, 35, 240, 355), 1.1);
        let walk = |start_s: f64| Sprite { image: person.clone(), from: (-260.0, 300.0), to: (1280.0, 300.0), start_s, end_s: start_s + 6.0 };
        let o = offset_s;
        let sprites = vec![
            Sprite { image: car.clone(), from: (200.0, -450.0), to: (200.0, 720.0), start_s: 30.0 + o, end_s: 34.0 + o },
            walk(60.0 + o),
            Sprite { image: car, from: (200.0, 720.0), to: (200.0, -450.0), start_s: 90.0 + o, end_s: 94.0 + o },
            walk(120.0 + o),
        ];
        let spec = ClipSpec { fps: 25, ..gate_720p(170.0, sprites, 4, 25.0) };
        render(&spec, p)
    })
}

/// A car so close to a gate camera that it fills the frame (`easypr_08.jpg` from the real-scene set, a car
/// front with its plate 浙A13840), driving down into a 720p frame over 3 s. The detector does not box it.
pub fn close_up_car() -> PathBuf {
    cached("close_up_car_720p.mp4", |p| {
        let car = scale(&load_rgb(&testkit::data("plates-scenes/easypr_08.jpg")), 1.4);
        let sprite = Sprite { image: car, from: (100.0, -300.0), to: (100.0, 60.0), start_s: 0.0, end_s: 3.0 };
        render(&ClipSpec { width: 1280, height: 720, fps: 25, seconds: 4.0, background: grey(1280, 720, 110), sprites: vec![sprite], codec: Codec::H264, noise: 0, drift: 0.0 }, p)
    })
}

/// Two cars side by side driving in together: 苏ED51712 on the left, the same model re-plated 京PL3N67 on
/// the right.
pub fn two_cars_side_by_side() -> PathBuf {
    cached("two_cars_side_by_side_1080p.mp4", |p| {
        let left = scale(&car_sprite(&load_rgb(&testkit::data("scenes/hy_test_img.jpg"))), 0.68);
        let right = scale(&car_sprite(&replate("plates-dev/京PL3N67.jpg")), 0.68);
        let pass = |image: RgbImage, x: f64| Sprite { image, from: (x, -200.0), to: (x, 560.0), start_s: 0.0, end_s: 3.0 };
        render(&road_1080p(4.0, vec![pass(left, 20.0), pass(right, 965.0)]), p)
    })
}

/// A bus at a toll lane (湘A97971, yellow, from `easypr_13.jpg` in the real-scene set) that the detector
/// boxes twice in most frames — as `bus` and as `truck`, both confident — with the whole photo sliding down
/// a 720p frame over 3 s (a car with a glare-blown plate comes along beside it).
pub fn bus_boxed_twice() -> PathBuf {
    cached("bus_boxed_twice_720p.mp4", |p| {
        let photo = load_rgb(&testkit::data("plates-scenes/easypr_13.jpg"));
        let k = (1280.0 / photo.width() as f64).min(720.0 / photo.height() as f64);
        let photo = scale(&photo, k);
        let x = (1280.0 - photo.width() as f64) / 2.0;
        let sprite = Sprite { image: photo, from: (x, -250.0), to: (x, 0.0), start_s: 0.0, end_s: 3.0 };
        render(&ClipSpec { width: 1280, height: 720, fps: 25, seconds: 4.0, background: grey(1280, 720, 110), sprites: vec![sprite], codec: Codec::H264, noise: 0, drift: 0.0 }, p)
    })
}

/// The new-energy car drives in and stops (0–4 s), is hidden for 3 s (a lorry passing in front, say: longer
/// than the 2 s lost timeout), is seen standing there again, and drives on out (8–10 s). 1080p, 11 s.
pub fn car_stopping_hidden_and_leaving() -> PathBuf {
    cached("car_stop_hidden_1080p.mp4", |p| {
        let car = car_sprite(&load_rgb(&testkit::data("scenes/hy_test_img.jpg")));
        let at = |from: f64, to: f64, start_s: f64, end_s: f64| Sprite { image: car.clone(), from: (280.0, from), to: (280.0, to), start_s, end_s };
        let sprites = vec![at(-320.0, 150.0, 0.0, 2.0), at(150.0, 150.0, 2.0, 4.0), at(150.0, 150.0, 7.0, 8.0), at(150.0, 330.0, 8.0, 10.0)];
        render(&road_1080p(11.0, sprites), p)
    })
}
