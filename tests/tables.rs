//! Real tables: missing cells, text columns, and the encoder fitted on the training rows.

use wgtrain::data::{self, ColumnCoding, CsvOptions, Dataset, Encoder, Missing};

fn parse(text: &str, options: &CsvOptions) -> wgtrain::Result<Dataset> {
    data::parse_csv("t.csv", text.as_bytes(), options)
}

fn with(missing: Missing) -> CsvOptions {
    CsvOptions {
        missing,
        ..CsvOptions::default()
    }
}

#[test]
fn every_missing_token_is_missing() {
    for token in [
        "", "NA", "N/A", "NaN", "?", "null", "na", "n/a", "nan", "NULL",
    ] {
        let text = format!("a,b,y\n1,2,0\n3,{token},1\n5,6,0\n");
        let err = parse(&text, &CsvOptions::default()).expect_err(token);
        let message = err.to_string();
        for word in ["column `b`", "1 missing cell", "line 3", "--missing"] {
            assert!(
                message.contains(word),
                "{token:?}: `{message}` lacks {word}"
            );
        }
        let d = parse(&text, &with(Missing::Mean)).expect(token);
        assert!(d.features[3].is_nan(), "{token:?}");
        assert_eq!(d.features[2], 3.0);
        assert!(d.is_raw());
    }
    // The count and the first line of the column, not of another one.
    let err = parse("a,b,y\n1,,0\n2,NA,1\n3,?,0\n", &CsvOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(
            "column `b`: 3 missing cells (empty, NA, N/A, NaN, ?, null), the first at line 2"
        ),
        "{err}"
    );
    // Infinity is not a missing value: still an error under every policy.
    let err = parse("a,y\n1,0\ninf,1\n", &with(Missing::Mean)).unwrap_err();
    assert!(
        err.to_string().contains("expected a finite number"),
        "{err}"
    );
}

#[test]
fn drop_leaves_out_rows_with_a_missing_feature_or_target() {
    let d = parse("a,b,y\n1,2,0\n3,,1\n5,6,NA\n7,8,1\n", &with(Missing::Drop)).expect("drop");
    assert_eq!(d.features, [1.0, 2.0, 7.0, 8.0]);
    assert_eq!(d.targets, [0.0, 1.0]);
    assert_eq!(d.lines, [2, 5]);
    assert_eq!(d.dropped_rows, 2);
    assert!(!d.is_raw());
    let err = parse("a,y\n,0\nNA,1\n", &with(Missing::Drop)).unwrap_err();
    assert!(err.to_string().contains("leaves none"), "{err}");
    // Without drop, a missing target is an error however features are filled.
    let err = parse("a,y\n1,0\n2,\n3,1\n", &with(Missing::Median)).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 3, column `y`: the target is empty"),
        "{err}"
    );
}

/// Fill values as scikit-learn's `SimpleImputer` computes them (`strategy="mean"`, `"median"`,
/// `"most_frequent"`, ties going to the smallest value), on the columns below.
#[test]
fn fill_values_follow_simple_imputer() {
    let text = "a,c,d,y\n1,red,3,0\n2,blue,3,1\n?,,1,0\n4,blue,1,1\n10,red,1,0\n";
    let d = parse(text, &with(Missing::Mean)).expect("load");
    let fills =
        |missing| -> Vec<ColumnCoding> { Encoder::fit(&d, missing, 100).expect("fit").columns };
    let numeric = |c: &ColumnCoding| match c {
        ColumnCoding::Numeric { fill, .. } => fill.expect("a fill"),
        other => panic!("{other:?}"),
    };
    let category = |c: &ColumnCoding| match c {
        ColumnCoding::Categorical {
            categories, fill, ..
        } => (categories.clone(), fill.clone().expect("a fill")),
        other => panic!("{other:?}"),
    };
    // Present values of a: 1, 2, 4, 10.
    let mean = fills(Missing::Mean);
    assert_eq!(numeric(&mean[0]), 4.25);
    assert_eq!(numeric(&fills(Missing::Median)[0]), 3.0);
    // All four appear once: the smallest.
    assert_eq!(numeric(&fills(Missing::Mode)[0]), 1.0);
    // d: 3 twice, 1 three times.
    assert_eq!(numeric(&fills(Missing::Mode)[2]), 1.0);
    assert_eq!(numeric(&mean[2]), 1.8);
    // Text columns take the most frequent category under every filling policy; blue and red tie.
    for missing in [Missing::Mean, Missing::Median, Missing::Mode] {
        assert_eq!(
            category(&fills(missing)[1]),
            (
                vec!["blue".to_string(), "red".to_string()],
                "blue".to_string()
            )
        );
    }
    let encoder = Encoder::fit(&d, Missing::Median, 100).expect("fit");
    assert_eq!(encoder.output_names(), ["a", "c=blue", "c=red", "d"]);
    let (encoded, unseen) = encoder.apply(&d, "t.csv".as_ref(), true).expect("encode");
    assert_eq!(unseen.count, 0);
    #[rustfmt::skip]
    assert_eq!(encoded.features, [
        1.0, 0.0, 1.0, 3.0,
        2.0, 1.0, 0.0, 3.0,
        3.0, 1.0, 0.0, 1.0,
        4.0, 1.0, 0.0, 1.0,
        10.0, 0.0, 1.0, 1.0,
    ]);
    assert_eq!(encoded.feature_names, encoder.output_names());
    assert!(!encoded.is_raw());
    // Under error or drop there are no fill values: a missing cell at encoding is an error.
    let strict = Encoder::fit(&d, Missing::Drop, 100).expect("fit");
    let err = strict.apply(&d, "t.csv".as_ref(), false).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 4, column `a`: a missing cell"),
        "{err}"
    );
    // A column with no value in the training rows has nothing to fill from.
    let empty = parse("a,b,y\n1,NA,0\n2,,1\n", &with(Missing::Mean)).expect("load");
    let err = Encoder::fit(&empty, Missing::Mean, 100).unwrap_err();
    assert!(
        err.to_string().contains("column `b` has no values"),
        "{err}"
    );
}

#[test]
fn categories_come_from_the_training_rows_and_unseen_ones_encode_as_zeros() {
    let d = parse(
        "city,x,y\nParis,1,0\nLyon,2,1\nParis,3,0\nNice,4,1\n",
        &CsvOptions::default(),
    )
    .expect("load");
    let train = d.subset(&[0, 1, 2]);
    let rest = d.subset(&[3, 1]);
    let encoder = Encoder::fit(&train, Missing::Error, 100).expect("fit");
    assert_eq!(encoder.output_names(), ["city=Lyon", "city=Paris", "x"]);
    let (encoded, unseen) = encoder
        .apply(&rest, "t.csv".as_ref(), false)
        .expect("encode");
    assert_eq!(encoded.features, [0.0, 0.0, 4.0, 1.0, 0.0, 2.0]);
    assert_eq!(unseen.count, 1);
    assert_eq!(
        unseen.first,
        Some(("line 5".into(), "city".into(), "Nice".into()))
    );
    let err = encoder.apply(&rest, "t.csv".as_ref(), true).unwrap_err();
    for word in ["line 5", "`city`", "`Nice`", "not seen in training"] {
        assert!(err.to_string().contains(word), "{err}");
    }
}

#[test]
fn forced_categories_are_ordered_by_value() {
    let options = CsvOptions {
        categorical: vec!["z".into()],
        ..CsvOptions::default()
    };
    let d = parse("z,x,y\n10,1,0\n2,1,1\n1,1,0\n2,1,1\n", &options).expect("load");
    let encoder = Encoder::fit(&d, Missing::Error, 100).expect("fit");
    assert_eq!(encoder.output_names(), ["z=1", "z=2", "z=10", "x"]);
    assert_eq!(encoder.categorical_names(), ["z"]);
    let (encoded, _) = encoder.apply(&d, "t.csv".as_ref(), true).expect("encode");
    assert_eq!(
        &encoded.features[..8],
        [0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    );
    let missing = CsvOptions {
        categorical: vec!["nope".into()],
        ..CsvOptions::default()
    };
    let err = parse("z,x,y\n1,1,0\n", &missing).unwrap_err();
    assert!(
        err.to_string()
            .contains("`nope` is not one of the feature columns"),
        "{err}"
    );
}

#[test]
fn columns_mixing_numbers_and_text_name_the_odd_cell() {
    let err = parse("x,y\n1,0\n2,1\n3O,0\n4,1\n", &CsvOptions::default()).unwrap_err();
    assert!(
        err.to_string().contains(
            "line 4, column `x`: expected a number like the column's other 3 cells, got `3O`"
        ),
        "{err}"
    );
    let err = parse("c,y\nred,0\n7,1\nblue,0\n", &CsvOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 3, column `c`: `7` is a number")
            && err.to_string().contains("--categorical c"),
        "{err}"
    );
    // Forced, the same column is three categories.
    let forced = CsvOptions {
        categorical: vec!["c".into()],
        ..CsvOptions::default()
    };
    let d = parse("c,y\nred,0\n7,1\nblue,0\n", &forced).expect("forced");
    assert_eq!(d.categories, [["red", "7", "blue"]]);
    // A decimal comma is a number in the wrong notation, not a category.
    let err = parse("a;y\n1,5;0\n2,25;1\n", &CsvOptions::default()).unwrap_err();
    assert!(
        err.to_string()
            .contains("`1,5` looks like a number with a decimal comma"),
        "{err}"
    );
    // Data for a trained model: text where the model reads numbers is an error at once.
    let known = CsvOptions {
        detect_categorical: false,
        ..CsvOptions::default()
    };
    let err = parse("c,y\nred,0\nblue,1\n", &known).unwrap_err();
    assert!(
        err.to_string()
            .contains("line 2, column `c`: expected a number, got `red`"),
        "{err}"
    );
}

#[test]
fn too_many_categories_is_an_error_naming_the_way_out() {
    let d = parse("id,y\na,0\nb,1\nc,0\nd,1\n", &CsvOptions::default()).expect("load");
    let err = Encoder::fit(&d, Missing::Error, 3).unwrap_err();
    for word in [
        "column `id` has 4 categories",
        "more than 3",
        "--ignore id",
        "--max-categories",
    ] {
        assert!(err.to_string().contains(word), "`{err}` lacks {word}");
    }
    assert!(Encoder::fit(&d, Missing::Error, 4).is_ok());
    // A column named like another column's category would give two inputs one name.
    let clash = parse(
        "city,city=Paris,y\nParis,1,0\nLyon,2,1\n",
        &CsvOptions::default(),
    )
    .expect("load");
    let err = Encoder::fit(&clash, Missing::Error, 100).unwrap_err();
    assert!(
        err.to_string()
            .contains("two inputs would be named `city=Paris`"),
        "{err}"
    );
}

#[test]
fn saved_encoders_are_checked() {
    let good = Encoder {
        missing: Missing::Mode,
        columns: vec![
            ColumnCoding::Categorical {
                name: "c".into(),
                categories: vec!["a".into(), "b".into()],
                fill: Some("a".into()),
            },
            ColumnCoding::Numeric {
                name: "x".into(),
                fill: Some(1.5),
            },
        ],
    };
    assert_eq!(good.check(), Ok(()));
    assert_eq!(good.width(), 3);
    let json = serde_json::to_string(&good).expect("json");
    assert_eq!(serde_json::from_str::<Encoder>(&json).expect("back"), good);
    let broken = |edit: &dyn Fn(&mut Encoder)| {
        let mut e = good.clone();
        edit(&mut e);
        e.check().expect_err("broken")
    };
    let set_fill = |e: &mut Encoder, f: Option<&str>| {
        if let ColumnCoding::Categorical { fill, .. } = &mut e.columns[0] {
            *fill = f.map(String::from);
        }
    };
    assert!(broken(&|e| set_fill(e, Some("z"))).contains("not one of its categories"));
    assert!(broken(&|e| set_fill(e, None)).contains("missing = mode"));
    assert!(broken(&|e| e.missing = Missing::Error).contains("does not go with"));
    assert!(broken(&|e| {
        if let ColumnCoding::Categorical { categories, .. } = &mut e.columns[0] {
            categories.push("a".into());
        }
    })
    .contains("twice"));
    assert!(broken(&|e| e.columns[1] = ColumnCoding::Numeric {
        name: "x".into(),
        fill: Some(f32::NAN)
    })
    .contains("not finite"));
    // Unknown fields are refused, as everywhere in the metadata.
    let edited = json.replace("\"fill\":1.5", "\"fill\":1.5,\"scale\":2");
    assert!(serde_json::from_str::<Encoder>(&edited).is_err());
}
