//! One vehicle, one chain: what the event builder does before and after tracking so that a vehicle seen
//! as two boxes, or lost for a moment, or missed by the detector altogether, still makes one passing.
//!
//! - **Before tracking** ([`consolidate`]): a vehicle box lying inside a bigger vehicle box of the same kind
//!   as a part of it (a cab, a bonnet, the front of a bus: big, standing on the same ground — not a smaller
//!   vehicle further away seen past it, see [`part_of`]) or overlapping it almost entirely (one vehicle
//!   called `car` and `truck` at once) is dropped, and its plate reads go to the bigger box — unless the two
//!   read different plates, which makes them two vehicles.
//! - **Plate-led detection** (also [`consolidate`]): a plate read that no vehicle box covers starts a
//!   vehicle of its own, with a box estimated from the plate ([`vehicle_from_plate`]); its chain says it was
//!   started from a plate.
//! - **After tracking** ([`Chains`]): a track that is confirmed lying inside a vehicle already followed
//!   joins that vehicle's chain instead of starting one; chains that read the same plate while they overlap
//!   are merged (the younger one ends with `merged_into`); a vehicle with a plate that stood still and was
//!   then lost inside the frame is remembered for `events.plate_memory_secs`, and a vehicle reading the
//!   same plate where it stood in that time continues its passing (its `end` waits for the memory to run
//!   out).

mod chains;

use models::plates::{PlateColour, PlateRead, PlateRows};
use models::{BBox, Detection, ObjectClass};

pub(super) use chains::Chains;

/// A box lying at least this much inside another (share of its own area) is part of it.
pub const NESTED: f32 = 0.8;
/// Two boxes of one kind overlapping at least this much are one object under two labels.
pub const DUPLICATE_IOU: f32 = 0.7;
/// A newly confirmed track lying at least this much inside a followed vehicle (or the other way round)
/// joins that vehicle's chain.
pub const JOIN_NESTED: f32 = 0.6;
/// Chains reading the same plate are one vehicle when their boxes overlap at least this much (IoU), or one
/// lies at least [`JOIN_NESTED`] inside the other.
pub const SAME_PLATE_IOU: f32 = 0.1;
/// A chain that starts reading the same plate within this many box widths (centre to centre) of where a
/// followed vehicle was lost, after it was last seen and further along its way, picks that vehicle up again.
pub const PICK_UP_WIDTHS: f32 = 1.5;

/// A vehicle whose last box comes this close to the frame's edge (fraction of the frame) has left the
/// frame, so it is not remembered for a return.
pub const EDGE_MARGIN: f32 = 0.02;

/// A vehicle has moved when its box centre shifts by more than this share of the box's width.
pub const STILL_SHIFT: f32 = 0.1;
/// A vehicle that stood still at least this long (seconds) before it was lost inside the frame is
/// remembered (it stopped, and something hid it or the detector lost it); one lost while moving has gone.
pub const STILL_BEFORE_LOST_S: f64 = 1.0;

/// Whether a chain first seen at `started` can be a vehicle first seen at `first` and lost at `lost`: near
/// where it was lost, and ahead of it in the direction it was going (a clip that loops, or a second
/// vehicle behind it, starts back where it came from).
pub fn picked_up(first: &BBox, lost: &BBox, started: &BBox) -> bool {
    let ((fx, fy), (lx, ly), (sx, sy)) = (first.center(), lost.center(), started.center());
    let ahead = (sx - lx) * (lx - fx) + (sy - ly) * (ly - fy) > 0.0;
    ahead && (sx - lx).hypot(sy - ly) <= PICK_UP_WIDTHS * lost.width().max(started.width())
}

/// Share of `inner`'s area that lies inside `outer`.
pub fn contained(inner: &BBox, outer: &BBox) -> f32 {
    let area = inner.area();
    if area <= 0.0 {
        0.0
    } else {
        inner.intersection(outer) / area
    }
}

/// A part of a vehicle is at least this share of the whole box's area; a smaller box inside a vehicle's
/// box is another vehicle further away (seen past it) far more often than a part of it.
pub const PART_MIN_AREA: f32 = 0.25;
/// A part stands on (nearly) the same ground as its whole: its bottom is at most this share of the whole's
/// height above the whole's bottom. A vehicle behind another stands higher up in the picture.
pub const PART_MAX_LIFT: f32 = 0.25;

/// Whether `inner` is a part of the vehicle boxed by `outer`: at least `share` of it lies inside, it is big
/// enough ([`PART_MIN_AREA`]) and stands on the same ground ([`PART_MAX_LIFT`]).
pub fn part_of(inner: &BBox, outer: &BBox, share: f32) -> bool {
    contained(inner, outer) >= share && inner.area() >= PART_MIN_AREA * outer.area() && outer.y2 - inner.y2 <= PART_MAX_LIFT * outer.height()
}

/// Whether two boxes are one vehicle seen twice: one is a part of the other ([`part_of`]).
pub fn nested(a: &BBox, b: &BBox, share: f32) -> bool {
    part_of(a, b, share) || part_of(b, a, share)
}

/// Whether a box touches the frame's edge (within [`EDGE_MARGIN`]).
pub fn at_edge(b: &BBox, width: u32, height: u32) -> bool {
    let (w, h) = (width as f32, height as f32);
    b.x1 <= w * EDGE_MARGIN || b.y1 <= h * EDGE_MARGIN || b.x2 >= w * (1.0 - EDGE_MARGIN) || b.y2 >= h * (1.0 - EDGE_MARGIN)
}

/// A vehicle box estimated from its plate: a plate is 440 mm wide, a car about 1.8–1.9 m wide and 1.5 m
/// tall, with the plate some 0.3–0.5 m above the road. So about 4.4 plate widths across, centred on the
/// plate, from 3.2 plate widths above the plate's bottom to 0.8 below it; clipped to the frame.
pub fn vehicle_from_plate(plate: &BBox, width: u32, height: u32) -> BBox {
    let pw = plate.width();
    let (cx, _) = plate.center();
    BBox::new(cx - 2.2 * pw, plate.y2 - 3.2 * pw, cx + 2.2 * pw, plate.y2 + 0.8 * pw).clamp(width as f32, height as f32)
}

/// A frame's detections after [`consolidate`], with the plates' `region` pointing into them.
#[derive(Debug, Clone, Default)]
pub struct Consolidated {
    pub detections: Vec<Detection>,
    /// Per detection: whether it was made from a plate no vehicle box covered.
    pub plate_led: Vec<bool>,
    pub plates: Vec<PlateRead>,
}

/// The vehicle detection a plate belongs to: the region the recogniser reported, else the smallest vehicle
/// box containing the plate's centre.
fn owner(detections: &[Detection], plate: &PlateRead) -> Option<usize> {
    plate.region.filter(|&i| i < detections.len()).or_else(|| {
        let (cx, cy) = plate.bbox.center();
        detections
            .iter()
            .enumerate()
            .filter(|(_, d)| d.class.carries_plate() && cx >= d.bbox.x1 && cx <= d.bbox.x2 && cy >= d.bbox.y1 && cy <= d.bbox.y2)
            .min_by(|a, b| a.1.bbox.area().total_cmp(&b.1.bbox.area()))
            .map(|(i, _)| i)
    })
}

/// Folds part-boxes and double-labelled boxes of one vehicle into one detection, and starts a vehicle from
/// every plate no vehicle box covers (see the module docs). People and other classes pass unchanged.
pub fn consolidate(detections: &[Detection], plates: &[PlateRead], width: u32, height: u32) -> Consolidated {
    let owners: Vec<Option<usize>> = plates.iter().map(|p| owner(detections, p)).collect();
    let mut texts: Vec<Vec<&str>> = vec![Vec::new(); detections.len()];
    for (p, o) in plates.iter().zip(&owners) {
        if let Some(i) = o {
            texts[*i].push(p.text.as_str());
        }
    }
    // Biggest first, so a part meets its whole already kept.
    let mut order: Vec<usize> = (0..detections.len()).collect();
    order.sort_by(|&a, &b| detections[b].bbox.area().total_cmp(&detections[a].bbox.area()));
    let mut into: Vec<Option<usize>> = vec![None; detections.len()];
    let mut kept: Vec<usize> = Vec::new();
    for &j in &order {
        let d = &detections[j];
        let whole = d.class.carries_plate().then(|| {
            kept.iter().copied().find(|&i| {
                let k = &detections[i];
                let same_kind = k.class.track_group() == d.class.track_group();
                let one_object = part_of(&d.bbox, &k.bbox, NESTED) || d.bbox.iou(&k.bbox) >= DUPLICATE_IOU;
                let (a, b) = (&texts[i], &texts[j]);
                let plates_agree = a.is_empty() || b.is_empty() || a.iter().any(|t| b.contains(t));
                same_kind && one_object && plates_agree
            })
        });
        match whole.flatten() {
            Some(i) => into[j] = Some(i),
            None => kept.push(j),
        }
    }
    kept.sort_unstable();
    let mut index = vec![usize::MAX; detections.len()];
    let mut out = Consolidated::default();
    for (n, &i) in kept.iter().enumerate() {
        index[i] = n;
        let mut d = detections[i].clone();
        // The whole keeps the best score any of its parts had.
        d.score = (0..detections.len()).filter(|&j| into[j] == Some(i)).fold(d.score, |s, j| s.max(detections[j].score));
        out.detections.push(d);
        out.plate_led.push(false);
    }
    for (p, o) in plates.iter().zip(owners) {
        let mut p = p.clone();
        p.region = match o.map(|i| into[i].unwrap_or(i)) {
            Some(i) => Some(index[i]),
            None => {
                out.detections.push(Detection { class: plate_led_class(&p), score: p.confidence, bbox: vehicle_from_plate(&p.bbox, width, height) });
                out.plate_led.push(true);
                Some(out.detections.len() - 1)
            }
        };
        out.plates.push(p);
    }
    out
}

/// A double-row yellow plate is a lorry's or a bus's; everything else is taken for a car.
fn plate_led_class(plate: &PlateRead) -> ObjectClass {
    if plate.colour == PlateColour::Yellow && plate.rows == PlateRows::Double {
        ObjectClass::TRUCK
    } else {
        ObjectClass::CAR
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use models::plates::PlateRead;

    fn det(label: &str, x1: f32, y1: f32, x2: f32, y2: f32, score: f32) -> Detection {
        Detection { class: ObjectClass::from_label(label).unwrap_or(ObjectClass::PERSON), score, bbox: BBox::new(x1, y1, x2, y2) }
    }

    fn plate(text: &str, bbox: BBox, region: Option<usize>) -> PlateRead {
        PlateRead {
            text: text.into(),
            confidence: 0.97,
            char_confidences: vec![0.97; 7],
            min_char_confidence: 0.97,
            layout: "standard",
            colour: PlateColour::Blue,
            rows: PlateRows::Single,
            corners: [(0.0, 0.0); 4],
            bbox,
            detector_score: 0.8,
            region,
        }
    }

    #[test]
    fn a_part_box_and_a_second_label_fold_into_the_whole_vehicle() {
        let dets = [
            det("car", 100.0, 100.0, 600.0, 500.0, 0.7),
            det("truck", 110.0, 105.0, 600.0, 500.0, 0.8),  // the same vehicle, labelled twice
            det("car", 300.0, 300.0, 580.0, 490.0, 0.9),    // its front
            det("person", 120.0, 120.0, 200.0, 400.0, 0.9), // someone in front of it stays
        ];
        let plates = [plate("苏A12345", BBox::new(400.0, 420.0, 480.0, 445.0), Some(2))];
        let c = consolidate(&dets, &plates, 1000, 1000);
        assert_eq!(c.detections.len(), 2, "{:?}", c.detections);
        assert_eq!(c.detections[0].bbox, dets[0].bbox);
        assert_eq!(c.detections[0].score, 0.9);
        assert_eq!(c.plates[0].region, Some(0));
        assert_eq!(c.plate_led, vec![false, false]);
    }

    #[test]
    fn a_smaller_vehicle_further_away_inside_a_near_one_stays() {
        // As in the real photo `wzh_03.jpg`: an SUV parked behind, inside the near car's box but higher up.
        let near = det("car", 0.0, 150.0, 1000.0, 1430.0, 0.88);
        let far = det("car", 640.0, 10.0, 940.0, 230.0, 0.73);
        assert_eq!(consolidate(&[near.clone(), far], &[], 1000, 1435).detections.len(), 2);
        // Big, but lifted off the near car's ground line: another vehicle.
        let behind = det("car", 100.0, 160.0, 900.0, 800.0, 0.8);
        assert_eq!(consolidate(&[near, behind], &[], 1000, 1435).detections.len(), 2);
    }

    #[test]
    fn boxes_with_different_plates_stay_two_vehicles() {
        // A car behind and inside the box of a bus, each with its own plate.
        let dets = [det("bus", 0.0, 0.0, 900.0, 900.0, 0.9), det("car", 100.0, 100.0, 400.0, 300.0, 0.8)];
        let plates = [plate("苏A12345", BBox::new(400.0, 800.0, 500.0, 830.0), Some(0)), plate("皖B54321", BBox::new(200.0, 250.0, 260.0, 270.0), Some(1))];
        let c = consolidate(&dets, &plates, 1000, 1000);
        assert_eq!(c.detections.len(), 2);
        assert_eq!(c.plates.iter().map(|p| p.region).collect::<Vec<_>>(), vec![Some(0), Some(1)]);
        // Side by side, nothing is nested at all.
        let dets = [det("car", 0.0, 300.0, 480.0, 700.0, 0.9), det("car", 500.0, 300.0, 980.0, 700.0, 0.9)];
        assert_eq!(consolidate(&dets, &[], 1000, 1000).detections.len(), 2);
    }

    #[test]
    fn a_plate_outside_every_vehicle_starts_one() {
        let dets = [det("person", 10.0, 10.0, 60.0, 200.0, 0.9)];
        let p = BBox::new(400.0, 600.0, 540.0, 645.0);
        let c = consolidate(&dets, &[plate("川A572F4", p, None)], 1280, 720);
        assert_eq!(c.detections.len(), 2);
        assert_eq!(c.plate_led, vec![false, true]);
        let v = &c.detections[1];
        assert_eq!(v.class, ObjectClass::CAR);
        assert_eq!(c.plates[0].region, Some(1));
        // The box is about a car around the plate, clipped to the frame.
        assert!(v.bbox.x1 < p.x1 && v.bbox.x2 > p.x2 && v.bbox.y1 < p.y1 && v.bbox.y2 <= 720.0, "{:?}", v.bbox);
        assert!((v.bbox.width() - 4.4 * p.width()).abs() < 1.0);
    }
}
