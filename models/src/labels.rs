//! Class names.

/// The 80 COCO class names in the order of the detector's class outputs.
pub const COCO_LABELS: [&str; 80] = [
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
];

/// The COCO class id of `label`, if it is one.
pub fn coco_class_id(label: &str) -> Option<usize> {
    COCO_LABELS.iter().position(|l| *l == label)
}

pub use edge_config::ObjectKind;

/// A detector class: the COCO class id, with its label, its [`ObjectKind`] and what the agent does with it.
/// The one place that knows which labels carry plates and which may be confused with each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectClass(u8);

impl ObjectClass {
    pub const PERSON: Self = Self(0);
    pub const BICYCLE: Self = Self(1);
    pub const CAR: Self = Self(2);
    pub const MOTORCYCLE: Self = Self(3);
    pub const BUS: Self = Self(5);
    pub const TRUCK: Self = Self(7);

    /// The class with COCO id `id`, if there is one.
    pub fn from_id(id: usize) -> Option<Self> {
        (id < COCO_LABELS.len()).then_some(Self(id as u8))
    }

    /// The class labelled `label` (`car`, `person`, …).
    pub fn from_label(label: &str) -> Option<Self> {
        coco_class_id(label).and_then(Self::from_id)
    }

    pub fn id(self) -> usize {
        usize::from(self.0)
    }

    /// The COCO label: `person`, `car`, `bus`, …
    pub fn label(self) -> &'static str {
        COCO_LABELS[self.id()]
    }

    pub fn kind(self) -> ObjectKind {
        if self == Self::PERSON {
            ObjectKind::Person
        } else {
            ObjectKind::Vehicle
        }
    }

    /// Whether the class carries a licence plate (its box is searched, its plate reads are voted).
    pub fn carries_plate(self) -> bool {
        matches!(self, Self::CAR | Self::BUS | Self::TRUCK | Self::MOTORCYCLE)
    }

    /// Classes in one group may be the same object over time: the detector confuses car/bus/truck and
    /// bicycle/motorcycle from frame to frame.
    pub fn track_group(self) -> u8 {
        match self {
            Self::PERSON => 0,
            Self::BICYCLE | Self::MOTORCYCLE => 1,
            Self::CAR | Self::BUS | Self::TRUCK => 2,
            _ => 3,
        }
    }
}

impl std::fmt::Display for ObjectClass {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_know_their_label_kind_and_plates() {
        let car = ObjectClass::from_label("car").unwrap_or(ObjectClass::PERSON);
        assert_eq!((car, car.label(), car.kind()), (ObjectClass::CAR, "car", ObjectKind::Vehicle));
        assert_eq!(ObjectClass::BUS.label(), "bus");
        assert_eq!(ObjectClass::TRUCK.label(), "truck");
        assert_eq!(ObjectClass::MOTORCYCLE.label(), "motorcycle");
        assert_eq!(ObjectClass::PERSON.kind(), ObjectKind::Person);
        assert!(ObjectClass::TRUCK.carries_plate() && !ObjectClass::BICYCLE.carries_plate() && !ObjectClass::PERSON.carries_plate());
        assert_eq!(ObjectClass::BUS.track_group(), ObjectClass::CAR.track_group());
        assert_ne!(ObjectClass::BICYCLE.track_group(), ObjectClass::CAR.track_group());
        assert_eq!(ObjectClass::from_id(80), None);
    }
}
