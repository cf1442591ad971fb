//! GA/T 1400 records made from our passings: the ids, the codes, and the objects as the standard names
//! them. A record is made once, when the passing ends, and queued as it will be sent, so every retry
//! carries the same `MotorVehicleID`.
//!
//! Ids (digits only): a device id is 20 digits; an image's id (`SourceID`, `ImageID`) is 41: the device id,
//! `02` (an image), the shot time `YYYYMMDDhhmmss` and a 5-digit sequence; an object's id
//! (`MotorVehicleID`, `PersonID`) is 48: the id of the image it was found in, its type (`02` motor vehicle,
//! `01` person) and a 5-digit sequence. Our sequences come from the event's id, so a record made twice for
//! one passing has one id.

use base64::Engine as _;
use chrono::{DateTime, Local, Utc};
use edge_config::{Gat1400, Gat1400Image};
use models::plates::PlateColour;
use models::{BBox, ObjectClass};
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::events::{Extras, ObjectEvent, Picture};

/// Which list a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    MotorVehicle,
    Person,
}

impl RecordKind {
    /// The queue's topic for the kind, and the resource it is posted to.
    pub fn topic(self) -> &'static str {
        match self {
            RecordKind::MotorVehicle => "MotorVehicles",
            RecordKind::Person => "Persons",
        }
    }

    pub fn from_topic(topic: &str) -> Option<Self> {
        match topic {
            "MotorVehicles" => Some(RecordKind::MotorVehicle),
            "Persons" => Some(RecordKind::Person),
            _ => None,
        }
    }

    /// The list envelope: `{"MotorVehicleListObject":{"MotorVehicleObject":[…]}}`.
    pub fn envelope(self, objects: Vec<Value>) -> Value {
        match self {
            RecordKind::MotorVehicle => json!({ "MotorVehicleListObject": { "MotorVehicleObject": objects } }),
            RecordKind::Person => json!({ "PersonListObject": { "PersonObject": objects } }),
        }
    }

    /// The object's id field.
    pub fn id_field(self) -> &'static str {
        match self {
            RecordKind::MotorVehicle => "MotorVehicleID",
            RecordKind::Person => "PersonID",
        }
    }

    /// The object type inside its id.
    fn type_code(self) -> &'static str {
        match self {
            RecordKind::MotorVehicle => "02",
            RecordKind::Person => "01",
        }
    }
}

/// One record, ready to send.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub kind: RecordKind,
    /// `MotorVehicleID` or `PersonID`.
    pub id: String,
    pub object: Value,
}

/// The standard's time: local time as `YYYYMMDDhhmmss`.
pub fn gat_time(at: DateTime<Utc>) -> String {
    at.with_timezone(&Local).format("%Y%m%d%H%M%S").to_string()
}

/// A 5-digit sequence derived from `seed` and `salt` (stable for one event and picture).
fn sequence(seed: &str, salt: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{seed}/{salt}").as_bytes());
    let n = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) % 100_000;
    format!("{n:05}")
}

/// The 41-digit id of an image taken by `device` at `at`.
pub fn image_id(device: &str, at: DateTime<Utc>, seed: &str, salt: &str) -> String {
    format!("{device}02{}{}", gat_time(at), sequence(seed, salt))
}

/// The plate colour code (GA 24.8 colours as GA/T 1400 uses them): 1 black, 2 white, 5 blue, 6 yellow,
/// 9 green, 99 other. A plate whose colour the pixels could not tell is 99.
pub fn plate_color(colour: PlateColour) -> &'static str {
    match colour {
        PlateColour::Black => "1",
        PlateColour::White => "2",
        PlateColour::Blue => "5",
        PlateColour::Yellow => "6",
        PlateColour::Green => "9",
        PlateColour::Unknown => "99",
    }
}

/// The plate class code (号牌种类, GA 24.7) from what the plate says: its special characters first
/// (警 police, WJ armed police, 使 embassy, 领 consulate, 港/澳 Hong Kong/Macau, 学 learner, 挂 trailer), then
/// its colour and the vehicle (yellow: large vehicle or motorcycle; blue: small vehicle; green: new energy,
/// large or small). 99 when it says nothing more.
pub fn plate_class(text: &str, colour: PlateColour, class: ObjectClass) -> &'static str {
    let motorcycle = class == ObjectClass::MOTORCYCLE;
    let large = class == ObjectClass::BUS || class == ObjectClass::TRUCK;
    if text.starts_with("WJ") {
        return "31";
    }
    for (mark, car, bike) in [('警', "23", "24"), ('使', "03", "09"), ('领', "04", "10"), ('港', "26", "26"), ('澳', "27", "27"), ('学', "16", "17"), ('挂', "15", "15")] {
        if text.contains(mark) {
            return if motorcycle { bike } else { car };
        }
    }
    match colour {
        PlateColour::Blue if !motorcycle => "02",
        PlateColour::Yellow if motorcycle => "07",
        PlateColour::Yellow => "01",
        PlateColour::Green if large => "51",
        PlateColour::Green => "52",
        _ => "99",
    }
}

/// The vehicle class code (车辆类型, GA 24.4) of a detector class: car K33 (small car), bus K11 (large
/// bus), truck H31 (light truck), motorcycle M21 (two-wheeled motorcycle), X99 other.
pub fn vehicle_class(class: ObjectClass) -> &'static str {
    match class {
        ObjectClass::CAR => "K33",
        ObjectClass::BUS => "K11",
        ObjectClass::TRUCK => "H31",
        ObjectClass::MOTORCYCLE => "M21",
        _ => "X99",
    }
}

/// The pictures a passing has, as the standard types them.
pub struct Pictures<'a> {
    pub snapshot: Option<(&'a [u8], u32, u32, BBox)>,
    pub extras: &'a Extras,
}

/// One `SubImageInfoObject`.
fn sub_image(device: &str, image: Gat1400Image, at: DateTime<Utc>, seed: &str, jpeg: &[u8], width: u32, height: u32) -> (String, Value) {
    let id = image_id(device, at, seed, image.code());
    let object = json!({
        "ImageID": id,
        "EventSort": 4,
        "DeviceID": device,
        "Type": image.code(),
        "FileFormat": "Jpeg",
        "ShotTime": gat_time(at),
        "Width": width,
        "Height": height,
        "Data": base64::engine::general_purpose::STANDARD.encode(jpeg),
    });
    (id, object)
}

fn box_fields(object: &mut serde_json::Map<String, Value>, b: &BBox) {
    let (x1, y1) = (b.x1.max(0.0).round() as u32, b.y1.max(0.0).round() as u32);
    let (x2, y2) = ((b.x2.round() as u32).max(x1 + 1), (b.y2.round() as u32).max(y1 + 1));
    object.insert("LeftTopX".into(), json!(x1));
    object.insert("LeftTopY".into(), json!(y1));
    object.insert("RightBtmX".into(), json!(x2));
    object.insert("RightBtmY".into(), json!(y2));
}

/// The record of a passing, or `None` when the uplink does not take its kind.
pub fn build(g: &Gat1400, e: &ObjectEvent, pictures: &Pictures<'_>) -> Option<Record> {
    let kind = match e.class.kind() {
        models::ObjectKind::Vehicle if g.vehicles && e.class.carries_plate() => RecordKind::MotorVehicle,
        models::ObjectKind::Person if g.people => RecordKind::Person,
        _ => return None,
    };
    let camera = e.camera();
    let device = g.camera_device_id(camera);
    let shot = e.snapshot.as_ref().map_or(e.at, |s| s.taken_at);
    let seed = e.id.as_str();
    // The pictures, in the standard's order: the scene first (the image the box refers to).
    let mut images = Vec::new();
    let mut source: Option<(String, BBox)> = None;
    let mut add = |image: Gat1400Image, p: Option<&Picture>| {
        if let Some(p) = p.filter(|_| g.wants(image)) {
            let (id, object) = sub_image(device, image, shot, seed, &p.jpeg, p.width, p.height);
            if source.is_none() && image != Gat1400Image::Plate {
                source = Some((id, p.object_box));
            }
            images.push(object);
        }
    };
    add(Gat1400Image::Scene, pictures.extras.scene.as_ref());
    let snapshot = pictures.snapshot.map(|(jpeg, width, height, object_box)| Picture { jpeg: jpeg.to_vec(), width, height, object_box });
    let own = if kind == RecordKind::Person { Gat1400Image::Person } else { Gat1400Image::Vehicle };
    add(own, snapshot.as_ref());
    if kind == RecordKind::MotorVehicle {
        add(Gat1400Image::Plate, pictures.extras.plate.as_ref());
    }
    // Without a picture the source is the frame itself: its id as if it had been kept, the box in it.
    let (source_id, object_box) = source.unwrap_or_else(|| (image_id(device, shot, seed, "frame"), e.bbox));
    let id = format!("{source_id}{}{}", kind.type_code(), sequence(seed, kind.type_code()));
    let mut o = serde_json::Map::new();
    o.insert(kind.id_field().into(), json!(id));
    o.insert("InfoKind".into(), json!(1));
    o.insert("SourceID".into(), json!(source_id));
    o.insert("DeviceID".into(), json!(device));
    box_fields(&mut o, &object_box);
    let lane = g.cameras.get(camera).and_then(|c| c.lane_no);
    match kind {
        RecordKind::MotorVehicle => {
            if let Some(t) = &g.tollgate_id {
                o.insert("TollgateID".into(), json!(t));
            }
            o.insert("LaneNo".into(), json!(lane.unwrap_or(1)));
            o.insert("PassTime".into(), json!(gat_time(e.crossings.last().map_or(e.started_at, |c| c.at))));
            o.insert("Direction".into(), json!(g.direction_code(camera, e.direction)));
            o.insert("VehicleClass".into(), json!(vehicle_class(e.class)));
            o.insert("VehicleColor".into(), json!("99"));
            match &e.plate {
                Some(p) => {
                    o.insert("HasPlate".into(), json!("1"));
                    o.insert("PlateNo".into(), json!(p.text));
                    o.insert("PlateColor".into(), json!(plate_color(p.color)));
                    o.insert("PlateClass".into(), json!(plate_class(&p.text, p.color, e.class)));
                    o.insert("PlateReliability".into(), json!(((p.confidence * 100.0).round() as u32).min(100).to_string()));
                }
                None => {
                    o.insert("HasPlate".into(), json!("0"));
                    o.insert("PlateNo".into(), json!("无车牌"));
                    o.insert("PlateColor".into(), json!("99"));
                    o.insert("PlateClass".into(), json!("99"));
                }
            }
        }
        RecordKind::Person => {
            o.insert("LocationMarkTime".into(), json!(gat_time(e.crossings.last().map_or(e.started_at, |c| c.at))));
            o.insert("PersonAppearTime".into(), json!(gat_time(e.started_at)));
            o.insert("PersonDisAppearTime".into(), json!(gat_time(e.ended_at.unwrap_or(e.at))));
        }
    }
    if !images.is_empty() {
        o.insert("SubImageList".into(), json!({ "SubImageInfoObject": images }));
    }
    Some(Record { kind, id, object: Value::Object(o) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use edge_config::Direction;

    #[test]
    fn ids_have_the_standards_lengths_and_parts() {
        let at = DateTime::parse_from_rfc3339("2026-11-28T08:00:00Z").unwrap().with_timezone(&Utc);
        let id = image_id("63010200001190000001", at, "0193d9c0-0000-7000-8000-000000000001", "14");
        assert_eq!(id.len(), 41);
        assert!(id.starts_with("6301020000119000000102") && id[22..36] == gat_time(at));
        assert!(id.bytes().all(|b| b.is_ascii_digit()));
        // Stable for one event and picture, different for another picture.
        assert_eq!(id, image_id("63010200001190000001", at, "0193d9c0-0000-7000-8000-000000000001", "14"));
        assert_ne!(id, image_id("63010200001190000001", at, "0193d9c0-0000-7000-8000-000000000001", "01"));
    }

    #[test]
    fn plates_map_to_the_standards_classes_and_colours() {
        use ObjectClass as C;
        assert_eq!((plate_class("京PL3N67", PlateColour::Blue, C::CAR), plate_color(PlateColour::Blue)), ("02", "5"));
        assert_eq!(plate_class("苏ED51712", PlateColour::Green, C::CAR), "52");
        assert_eq!(plate_class("苏ED51712", PlateColour::Green, C::BUS), "51");
        assert_eq!(plate_class("青A12345", PlateColour::Yellow, C::TRUCK), "01");
        assert_eq!(plate_class("青A1234学", PlateColour::Yellow, C::CAR), "16");
        assert_eq!(plate_class("青A1234警", PlateColour::White, C::CAR), "23");
        assert_eq!(plate_class("WJ青12345", PlateColour::White, C::TRUCK), "31");
        assert_eq!(plate_class("粤Z1234港", PlateColour::Black, C::CAR), "26");
        assert_eq!(plate_class("青A1234", PlateColour::Unknown, C::CAR), "99");
        assert_eq!(plate_color(PlateColour::Unknown), "99");
        assert_eq!(plate_color(PlateColour::Yellow), "6");
    }

    fn settings(people: bool) -> Gat1400 {
        let text = format!(
            "[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n\n[gat1400]\nserver = \"http://127.0.0.1:9\"\ndevice_id = \"63010200001190000001\"\npassword = \"x\"\npeople = {people}\ndirection_in = \"3\"\n"
        );
        edge_config::parse_str(&text).unwrap().gat1400.unwrap()
    }

    fn passing(class: ObjectClass) -> ObjectEvent {
        let at = DateTime::parse_from_rfc3339("2026-11-28T08:00:03Z").unwrap().with_timezone(&Utc);
        let site = edge_config::parse_str("[site]\ncity = \"a\"\ndistrict = \"b\"\ntown = \"c\"\nvillage = \"d\"\ncheckpoint = \"e\"\n").unwrap().site;
        ObjectEvent {
            origin: std::sync::Arc::new(crate::topics::Origin { site, camera: "gate-in".into() }),
            id: "0193d9c0-0000-7000-8000-000000000001".into(),
            seq: 3,
            class,
            phase: crate::events::Phase::End,
            track_id: 1,
            started_at: at - chrono::Duration::seconds(3),
            ended_at: Some(at),
            at,
            direction: Some(Direction::In),
            crossings: vec![],
            zones: vec![],
            score: 0.9,
            bbox: BBox::new(600.0, 590.0, 1300.0, 990.0),
            frame: crate::events::FrameSize { width: 1920, height: 1080 },
            plate: None,
            snapshot: None,
            from_plate: false,
            merged_into: None,
        }
    }

    #[test]
    fn a_person_record_has_no_face_fields_and_a_vehicle_without_plate_says_so() {
        let extras = Extras::default();
        let pictures = Pictures { snapshot: None, extras: &extras };
        let person = build(&settings(true), &passing(ObjectClass::PERSON), &pictures).unwrap();
        assert_eq!(person.kind, RecordKind::Person);
        assert_eq!(person.id.len(), 48);
        assert_eq!(&person.id[41..43], "01");
        assert_eq!(person.object["SourceID"].as_str().map(str::len), Some(41));
        assert!(person.object.as_object().unwrap().keys().all(|k| !k.contains("Face")), "{}", person.object);
        // Without `people`, no person records.
        assert!(build(&settings(false), &passing(ObjectClass::PERSON), &pictures).is_none());
        let car = build(&settings(false), &passing(ObjectClass::CAR), &pictures).unwrap();
        assert_eq!((car.object["HasPlate"].as_str(), car.object["PlateNo"].as_str(), car.object["PlateColor"].as_str()), (Some("0"), Some("无车牌"), Some("99")));
        assert_eq!(car.object["Direction"], "3");
        assert_eq!(car.object["LeftTopX"], 600);
        // The same passing always has the same id.
        assert_eq!(build(&settings(false), &passing(ObjectClass::CAR), &pictures).unwrap().id, car.id);
        // A bicycle is neither.
        assert!(build(&settings(true), &passing(ObjectClass::BICYCLE), &pictures).is_none());
    }
}
