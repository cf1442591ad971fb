//! Plate recognition on real images: the 500 dev crops, the HyperLPR scenes, and things that are not plates.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use models::plates::{FrameSearch, PlateColour, PlateModelPaths, PlateRecognizer, RecognizerSettings};
use models::{runtime::environment, BgrImage, SessionOptions, Yolox, YoloxSettings};

fn recognizer() -> PlateRecognizer {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let paths = PlateModelPaths {
        region_detector: testkit::model("plate_det_y5fu_320.onnx"),
        frame_detector: Some(testkit::model("plate_det_y5fu_640.onnx")),
        reader: testkit::model("ppocr_v4_rec.onnx"),
        colour: Some(testkit::model("plate_color_cls_96.onnx")),
    };
    PlateRecognizer::load(env, &paths, &SessionOptions::default(), RecognizerSettings::default()).unwrap()
}

/// The dev crops with their ground truth from the file names.
fn dev_set() -> Vec<(String, BgrImage)> {
    let dir = testkit::data("plates-dev");
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    files.sort();
    files.into_iter().map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), BgrImage::open(&p).unwrap())).collect()
}

#[test]
fn reads_at_least_98_percent_of_the_dev_plates_exactly() {
    let mut rec = recognizer();
    let set = dev_set();
    assert_eq!(set.len(), 500);
    let mut correct = 0;
    let mut wrong = Vec::new();
    for chunk in set.chunks(16) {
        let views: Vec<_> = chunk.iter().map(|(_, img)| img.view()).collect();
        for ((truth, _), (colour, read)) in chunk.iter().zip(rec.read_crops(&views).unwrap()) {
            match read {
                Ok(t) if t.text == *truth => correct += 1,
                other => wrong.push(format!("{truth}: {other:?} ({colour:?})")),
            }
        }
    }
    let rate = correct as f64 / set.len() as f64;
    println!("exact plates: {correct}/{} = {:.1}%", set.len(), rate * 100.0);
    for w in &wrong {
        println!("  {w}");
    }
    assert!(rate >= 0.98, "exact-match rate {rate:.3} below 0.98:\n{}", wrong.join("\n"));
}

fn vehicles(image: &BgrImage) -> Vec<models::BBox> {
    let env = environment(Some(&testkit::ort_library()), 2).unwrap();
    let settings = YoloxSettings { classes: vec![2, 3, 5, 7], ..YoloxSettings::default() };
    let mut yolox = Yolox::load(env, &testkit::model("yolox_nano_416.onnx"), &SessionOptions::default(), settings).unwrap();
    yolox.detect(&image.view()).unwrap().into_iter().map(|d| d.bbox).collect()
}

fn read_scene(file: &str, whole_frame: bool) -> models::plates::Recognition {
    let image = BgrImage::open(&testkit::data(&format!("scenes/{file}"))).unwrap();
    let regions = vehicles(&image);
    let search = if whole_frame { FrameSearch::Fine } else { FrameSearch::Off };
    recognizer().recognize(&image.view(), &regions, search).unwrap()
}

#[test]
fn reads_the_green_new_energy_plate_in_the_street_scene_from_the_car_region() {
    let r = read_scene("hy_test_img.jpg", false);
    let texts: Vec<_> = r.plates.iter().map(|p| (p.text.as_str(), p.colour)).collect();
    assert_eq!(texts, vec![("苏ED51712", PlateColour::Green)], "{r:?}");
    let p = &r.plates[0];
    assert_eq!(p.layout, "new-energy-small");
    assert!(p.region.is_some(), "found inside a vehicle region");
    assert!(p.bbox.x1 > 1700.0 && p.bbox.y1 > 700.0, "plate box in frame pixels: {:?}", p.bbox);
}

#[test]
fn reads_the_cross_border_plate_in_a_tight_crop() {
    let r = read_scene("hy_a.jpg", true);
    let texts: Vec<_> = r.plates.iter().map(|p| (p.text.as_str(), p.colour)).collect();
    assert_eq!(texts, vec![("粤ZP560港", PlateColour::Black)], "{r:?}");
}

#[test]
fn reads_the_blue_plate_on_the_orange_car() {
    let r = read_scene("hy_2.jpg", true);
    let texts: Vec<_> = r.plates.iter().map(|p| (p.text.as_str(), p.colour)).collect();
    assert_eq!(texts, vec![("藏DT5022", PlateColour::Blue)], "{r:?}");
}

/// `text` rendered in `fg` on `bg`, and what the reader makes of it as a plate crop.
fn read_rendered(rec: &mut PlateRecognizer, text: &str, fg: [u8; 3], bg: [u8; 3]) -> (image::RgbImage, models::plates::CropRead) {
    let rgb = testkit::text::render(text, 40.0, fg, bg, 6);
    let img = BgrImage::from_rgb(rgb.width(), rgb.height(), rgb.as_raw()).unwrap();
    let read = rec.read_crops(&[img.view()]).unwrap().pop().unwrap();
    (rgb, read)
}

#[test]
fn special_plate_types_read_with_their_colour_from_rendered_crops() {
    // No licensed real photo of these types exists in the shared data (its README), so rendered crops are
    // the extra evidence for the layouts the real-scene table cannot cover.
    let white = [240, 240, 240];
    let black = [15, 15, 15];
    let yellow = [240, 190, 0];
    let cases: &[(&str, [u8; 3], [u8; 3], PlateColour)] = &[
        ("京A1234警", [0, 0, 0], white, PlateColour::White),
        ("鲁B1234挂", [0, 0, 0], yellow, PlateColour::Yellow),
        ("渝B3587学", [0, 0, 0], yellow, PlateColour::Yellow),
        ("粤Z1234港", white, black, PlateColour::Black),
        ("粤Z1234澳", white, black, PlateColour::Black),
        ("沪A1234领", white, black, PlateColour::Black),
        ("使014578", white, black, PlateColour::Black),
        ("苏ED51712", [0, 0, 0], [120, 220, 120], PlateColour::Green),
        // Layouts outside province + letter: armed police (black on white), civil aviation and agricultural
        // (white on green).
        ("WJ粤6788B", [0, 0, 0], white, PlateColour::White),
        ("民航B9016", white, [20, 110, 60], PlateColour::Green),
        ("皖1946673", white, [20, 110, 60], PlateColour::Green),
    ];
    let mut rec = recognizer();
    for (text, fg, bg, colour) in cases {
        let (_, (got, read)) = read_rendered(&mut rec, text, *fg, *bg);
        assert_eq!(read.map(|t| t.text).as_deref(), Ok(*text), "{text}");
        assert_eq!(got, *colour, "{text}");
    }
}

#[test]
fn signs_and_text_that_are_not_plates_yield_no_plate() {
    // White on blue and black on yellow look like plates; the rest are everyday roadside text and foreign
    // plates.
    let signs: &[(&str, [u8; 3], [u8; 3])] = &[
        ("欢迎光临小庄村", [255, 255, 255], [20, 60, 180]),
        ("前方学校 减速慢行", [0, 0, 0], [240, 200, 0]),
        ("南京路 100米", [255, 255, 255], [20, 60, 180]),
        ("京沪高速 G2", [255, 255, 255], [0, 120, 60]),
        ("138-0013-8000", [0, 0, 0], [255, 255, 255]),
        ("AB12345", [255, 255, 255], [20, 60, 180]),
        ("ABCDEFG", [0, 0, 0], [240, 200, 0]),
        ("12345", [255, 255, 255], [20, 60, 180]),
        ("皖A", [255, 255, 255], [20, 60, 180]),
        ("禁止停车", [255, 255, 255], [200, 20, 20]),
        ("STOP", [255, 255, 255], [200, 20, 20]),
        ("小庄村村民委员会", [200, 0, 0], [255, 255, 255]),
        // Foreign plates (UK rear and front, German, Québec, Californian): squeezed into a mainland layout
        // they would need a province the crop does not show.
        ("LS15 EBC", [10, 10, 10], [250, 210, 0]),
        ("KS67 AEA", [10, 10, 10], [245, 245, 245]),
        ("S TA 5131E", [10, 10, 10], [245, 245, 245]),
        ("FMA 6383", [20, 40, 120], [245, 245, 245]),
        ("VODKAA", [20, 40, 120], [245, 245, 245]),
    ];
    let mut rec = recognizer();
    for (text, fg, bg) in signs {
        let (rgb, (_, read)) = read_rendered(&mut rec, text, *fg, *bg);
        assert!(read.is_err(), "sign {text:?} read as a plate: {read:?}");
        // And pasted into a street photo, the full chain finds no plate in it either.
        let mut scene = testkit::clips::load_rgb(&testkit::data("scenes/coco_000000001532.jpg"));
        image::imageops::overlay(&mut scene, &rgb, 40, 40);
        let frame = BgrImage::from_rgb(scene.width(), scene.height(), scene.as_raw()).unwrap();
        let found = rec.recognize(&frame.view(), &[], FrameSearch::Fine).unwrap();
        assert!(found.plates.iter().all(|p| p.bbox.x1 > 40.0 + rgb.width() as f32 || p.bbox.y1 > 40.0 + rgb.height() as f32), "sign {text:?} read as {:?}", found.plates);
    }
}

#[test]
fn partial_plates_are_rejected_not_read_short() {
    let mut rec = recognizer();
    let mut checked = 0;
    for (truth, img) in dev_set().iter().step_by(25) {
        let v = img.view();
        let (w, h) = (v.width() as f32, v.height() as f32);
        for part in [models::BBox::new(0.0, 0.0, w * 0.45, h), models::BBox::new(w * 0.45, 0.0, w, h), models::BBox::new(w * 0.2, 0.0, w * 0.8, h)] {
            let crop = v.crop(part).unwrap();
            let (_, read) = rec.read_crops(&[crop]).unwrap().pop().unwrap();
            assert!(read.is_err(), "part {part:?} of {truth} read as {read:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 60);
}
